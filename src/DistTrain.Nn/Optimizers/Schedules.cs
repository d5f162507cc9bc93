// Learning-rate schedules as closed forms of the 1-based update count t (the t of Optimizer.Step):
// constant, step (×gamma every N updates), cosine (to a minimum over T updates), linear warm-up before
// any of them; parsed from "constant", "step:1000:0.5", "cosine", "cosine:T[:min]", "warmup:500+cosine".
using System.Globalization;

namespace DistTrain.Nn.Optimizers;

public abstract class LrSchedule
{
    /// <summary>The learning rate for update t (t ≥ 1).</summary>
    public abstract float At(long t);

    public abstract override string ToString();

    /// <summary>Parses a schedule. <paramref name="totalSteps"/> (the run's number of updates) is what a
    /// bare "cosine" anneals over, minus any warm-up.</summary>
    public static LrSchedule Parse(string spec, float baseLr, long totalSteps = 0)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!(baseLr > 0f) || !float.IsFinite(baseLr))
            throw new ArgumentOutOfRangeException(nameof(baseLr), baseLr, "The learning rate must be a finite number > 0.");
        var s = spec.Trim().ToLowerInvariant();
        if (s.StartsWith("warmup:", StringComparison.Ordinal))
        {
            var plus = s.IndexOf('+');
            var w = Int(spec, plus < 0 ? s[7..] : s[7..plus], "warm-up steps");
            if (plus >= 0 && totalSteps > 0 && totalSteps <= w && s[(plus + 1)..] == "cosine")
                throw new ArgumentException($"Learning-rate schedule '{spec}': the run has {totalSteps} steps, no more than its {w} warm-up steps, " +
                    "so nothing is left to anneal; shorten the warm-up, train longer, or write cosine:T.", nameof(spec));
            var inner = plus < 0 ? new ConstantLr(baseLr) : ParseInner(spec, s[(plus + 1)..], baseLr, totalSteps - w);
            return new WarmupLr(w, inner);
        }
        return ParseInner(spec, s, baseLr, totalSteps);
    }

    private static LrSchedule ParseInner(string spec, string s, float baseLr, long totalSteps)
    {
        var parts = s.Split(':');
        switch (parts[0])
        {
            case "constant" when parts.Length == 1:
                return new ConstantLr(baseLr);
            case "step" when parts.Length == 3:
                return new StepLr(baseLr, Int(spec, parts[1], "step interval"), Num(spec, parts[2], "gamma"));
            case "cosine" when parts.Length <= 3:
                var t = parts.Length >= 2 ? Int(spec, parts[1], "cosine steps") : totalSteps;
                if (t <= 0)
                    throw new ArgumentException(
                        $"Learning-rate schedule '{spec}': cosine needs its length; write cosine:T or give the total number of steps.", nameof(spec));
                return new CosineLr(baseLr, t, parts.Length == 3 ? Num(spec, parts[2], "minimum lr") : 0f);
            default:
                throw new ArgumentException(
                    $"Unknown learning-rate schedule '{spec}'. Valid forms: constant, step:N:GAMMA, cosine, cosine:T, cosine:T:MIN_LR, " +
                    "warmup:W, warmup:W+<one of those>.", nameof(spec));
        }
    }

    private static long Int(string spec, string s, string what) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v
        : throw new ArgumentException($"Learning-rate schedule '{spec}': {what} '{s}' must be a whole number > 0.", nameof(spec));

    private static float Num(string spec, string s, string what) =>
        float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0f && float.IsFinite(v) ? v
        : throw new ArgumentException($"Learning-rate schedule '{spec}': {what} '{s}' must be a number >= 0.", nameof(spec));

    private protected static void CheckT(long t)
    {
        if (t < 1) throw new ArgumentOutOfRangeException(nameof(t), t, "The update count t is 1-based.");
    }
}

/// <summary>lr(t) = base.</summary>
public sealed class ConstantLr(float baseLr) : LrSchedule
{
    public float BaseLr { get; } = baseLr;
    public override float At(long t) { CheckT(t); return BaseLr; }
    public override string ToString() => $"constant(lr={BaseLr})";
}

/// <summary>lr(t) = base · γ^⌊(t−1)/N⌋ (PyTorch StepLR stepped once per update).</summary>
public sealed class StepLr : LrSchedule
{
    public StepLr(float baseLr, long every, float gamma)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        (BaseLr, Every, Gamma) = (baseLr, every, gamma);
    }

    public float BaseLr { get; }
    public long Every { get; }
    public float Gamma { get; }
    public override float At(long t) { CheckT(t); return (float)(BaseLr * Math.Pow(Gamma, (t - 1) / Every)); }
    public override string ToString() => $"step(lr={BaseLr}, every={Every}, gamma={Gamma})";
}

/// <summary>lr(t) = min + (base − min)·(1 + cos(π·s/T))/2 with s = min(t−1, T) (PyTorch
/// CosineAnnealingLR, held at min after T updates instead of rising again).</summary>
public sealed class CosineLr : LrSchedule
{
    public CosineLr(float baseLr, long totalSteps, float minLr = 0f)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, 1);
        (BaseLr, TotalSteps, MinLr) = (baseLr, totalSteps, minLr);
    }

    public float BaseLr { get; }
    public long TotalSteps { get; }
    public float MinLr { get; }

    public override float At(long t)
    {
        CheckT(t);
        double s = Math.Min(t - 1, TotalSteps);
        return (float)(MinLr + ((double)BaseLr - MinLr) * (1 + Math.Cos(Math.PI * s / TotalSteps)) / 2);
    }

    public override string ToString() => $"cosine(lr={BaseLr}, steps={TotalSteps}, min={MinLr})";
}

/// <summary>Linear warm-up: lr(t) = inner(1)·t/W for t ≤ W, then inner(t − W).</summary>
public sealed class WarmupLr : LrSchedule
{
    public WarmupLr(long warmupSteps, LrSchedule inner)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(warmupSteps, 1);
        ArgumentNullException.ThrowIfNull(inner);
        (WarmupSteps, Inner) = (warmupSteps, inner);
    }

    public long WarmupSteps { get; }
    public LrSchedule Inner { get; }

    public override float At(long t)
    {
        CheckT(t);
        return t <= WarmupSteps ? (float)((double)Inner.At(1) * t / WarmupSteps) : Inner.At(t - WarmupSteps);
    }

    public override string ToString() => $"warmup({WarmupSteps}) + {Inner}";
}
