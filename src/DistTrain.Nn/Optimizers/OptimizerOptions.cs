// Hyper-parameters shared by the optimizers, with PyTorch's defaults, and the factory that builds an
// optimizer from its command-line name (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw).
namespace DistTrain.Nn.Optimizers;

/// <summary>Which momentum recurrence <see cref="Momentum"/> runs.</summary>
public enum MomentumForm
{
    /// <summary>PyTorch SGD(momentum=β): v = βv + g; p -= lr·v.</summary>
    Classic = 0,
    /// <summary>Exponential moving average: v = βv + (1−β)g; p -= lr·v (v starts at 0, no bias correction).</summary>
    Ema = 1,
}

/// <summary>Hyper-parameters; every default is PyTorch's for the same optimizer.</summary>
public sealed record OptimizerOptions
{
    /// <summary>Momentum β for momentum and nesterov.</summary>
    public float Momentum { get; init; } = 0.9f;
    public MomentumForm MomentumForm { get; init; } = MomentumForm.Classic;
    /// <summary>Adam/AdamW first- and second-moment decay.</summary>
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.999f;
    /// <summary>RMSprop smoothing constant.</summary>
    public float Alpha { get; init; } = 0.99f;
    /// <summary>Denominator term; null = PyTorch's default (Adam, AdamW, RMSprop 1e-8; Adagrad 1e-10).</summary>
    public float? Eps { get; init; }
    /// <summary>L2 penalty added to the gradient (g += wd·p, PyTorch weight_decay) for every optimizer
    /// except AdamW, where it is decoupled (p *= 1 − lr·wd). null = 0, or 0.01 for AdamW (PyTorch).</summary>
    public float? WeightDecay { get; init; }
    /// <summary>Adagrad: lr / (1 + (t−1)·lr_decay).</summary>
    public float LrDecay { get; init; }
    /// <summary>Adagrad: the starting value of the sum of squares.</summary>
    public float InitialAccumulatorValue { get; init; }

    internal static float CheckUnit(string name, float v) =>
        v is >= 0f and < 1f ? v : throw new ArgumentOutOfRangeException(name, v, $"Optimizer option {name} must be in [0, 1).");

    internal static float CheckNonNegative(string name, float v) =>
        v >= 0f && float.IsFinite(v) ? v : throw new ArgumentOutOfRangeException(name, v, $"Optimizer option {name} must be finite and >= 0.");
}

public static class OptimizerFactory
{
    public static IReadOnlyList<string> Names { get; } = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"];

    /// <summary>Settings a name may carry after a colon: "adam:beta1=0.5,beta2=0.99" (DCGAN's Adam).</summary>
    public static IReadOnlyList<string> SettingNames { get; } = ["beta1", "beta2", "eps", "momentum", "alpha"];

    /// <summary>Builds the optimizer called <paramref name="name"/> (case-insensitive) for <paramref name="length"/> parameters;
    /// "name:key=value,..." overrides <see cref="SettingNames"/> of <paramref name="opts"/>.</summary>
    public static Optimizer Create(string name, int length, OptimizerOptions? opts = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        opts ??= new OptimizerOptions();
        int colon = name.IndexOf(':');
        if (colon >= 0)
        {
            opts = WithSettings(name, name[(colon + 1)..], opts);
            name = name[..colon];
        }
        return name.Trim().ToLowerInvariant() switch
        {
            "sgd" => new Sgd(length, opts.WeightDecay ?? 0f),
            "momentum" => new Momentum(length, opts.Momentum, opts.MomentumForm, opts.WeightDecay ?? 0f),
            "nesterov" => new Nesterov(length, opts.Momentum, opts.WeightDecay ?? 0f),
            "adagrad" => new Adagrad(length, opts.Eps ?? 1e-10f, opts.LrDecay, opts.InitialAccumulatorValue, opts.WeightDecay ?? 0f),
            "rmsprop" => new RmsProp(length, opts.Alpha, opts.Eps ?? 1e-8f, opts.WeightDecay ?? 0f),
            "adam" => new Adam(length, opts.Beta1, opts.Beta2, opts.Eps ?? 1e-8f, opts.WeightDecay ?? 0f),
            "adamw" => new AdamW(length, opts.Beta1, opts.Beta2, opts.Eps ?? 1e-8f, opts.WeightDecay ?? 0.01f),
            _ => throw new ArgumentException(
                $"Unknown optimizer '{name}'. Valid names: {string.Join(", ", Names)}.", nameof(name)),
        };
    }

    private static OptimizerOptions WithSettings(string whole, string settings, OptimizerOptions opts)
    {
        foreach (var part in settings.Split(',', StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', StringSplitOptions.TrimEntries);
            if (kv.Length != 2 || !float.TryParse(kv[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v))
                throw new ArgumentException($"Optimizer '{whole}': \"{part}\" is not key=number; write e.g. adam:beta1=0.5,beta2=0.999.", nameof(whole));
            opts = kv[0].ToLowerInvariant() switch
            {
                "beta1" => opts with { Beta1 = v },
                "beta2" => opts with { Beta2 = v },
                "eps" => opts with { Eps = v },
                "momentum" => opts with { Momentum = v },
                "alpha" => opts with { Alpha = v },
                _ => throw new ArgumentException($"Optimizer '{whole}': unknown setting \"{kv[0]}\"; valid: {string.Join(", ", SettingNames)}.", nameof(whole)),
            };
        }
        return opts;
    }
}
