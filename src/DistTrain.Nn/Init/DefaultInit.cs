// Weight initialisation for Dense and Conv2d from a short spec string: PyTorch's default
// (kaiming_uniform a=√5 → U(±1/√fan_in) for weight and bias), xavier, he, zeros, normal:STD, uniform:A.
// Draws come from a caller's seeded System.Random, so a model's initial weights follow from its seed.
using DistTrain.Tensors;

namespace DistTrain.Nn.Init;

public static class DefaultInit
{
    /// <summary>The spec strings <see cref="Apply"/> understands (for help texts and errors).</summary>
    public const string Accepted = "default, xavier, he, zeros, normal:STD, uniform:A";

    /// <summary>Throws ArgumentException unless <paramref name="spec"/> is one of <see cref="Accepted"/>.</summary>
    public static void Validate(string spec, string owner) => Parse(spec, owner);

    /// <summary>
    /// Initialises <paramref name="weight"/> (and <paramref name="bias"/>, may be null) by <paramref name="spec"/>:
    /// "default" = PyTorch's Linear/Conv2d reset_parameters: weight and bias ~ U(−1/√fan_in, 1/√fan_in);
    /// "xavier" = xavier_uniform: U(±√(6/(fan_in+fan_out))), bias 0;
    /// "he" = kaiming_normal (fan_in, ReLU): N(0, 2/fan_in), bias 0;
    /// "zeros"; "normal:S" = N(0, S²), bias 0; "uniform:A" = U(−A, A), bias 0.
    /// </summary>
    public static void Apply(string spec, Tensor weight, Tensor? bias, int fanIn, int fanOut, Random rng, string owner)
    {
        var (kind, arg) = Parse(spec, owner);
        var w = weight.Span;
        switch (kind)
        {
            case "default":
                {
                    float bound = fanIn > 0 ? 1f / MathF.Sqrt(fanIn) : 0f;
                    Uniform(w, bound, rng);
                    if (bias is not null) Uniform(bias.Span, bound, rng);
                    return;
                }
            case "xavier": Uniform(w, MathF.Sqrt(6f / (fanIn + fanOut)), rng); break;
            case "he": Normal(w, MathF.Sqrt(2f / fanIn), rng); break;
            case "zeros": w.Clear(); break;
            case "normal": Normal(w, arg, rng); break;
            case "uniform": Uniform(w, arg, rng); break;
        }
        bias?.Clear();
    }

    public static void Uniform(Span<float> dst, float bound, Random rng)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
    }

    /// <summary>N(0, std²) by Box–Muller, two draws per pair of uniforms.</summary>
    public static void Normal(Span<float> dst, float std, Random rng)
    {
        for (int i = 0; i < dst.Length; i += 2)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1)) * std;
            dst[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < dst.Length) dst[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
    }

    private static (string Kind, float Arg) Parse(string spec, string owner)
    {
        var s = (spec ?? "default").Trim().ToLowerInvariant();
        if (s is "default" or "xavier" or "he" or "zeros") return (s, 0f);
        int colon = s.IndexOf(':');
        if (colon > 0)
        {
            var kind = s[..colon];
            if ((kind is "normal" or "uniform") &&
                float.TryParse(s[(colon + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var a) &&
                a >= 0 && float.IsFinite(a))
                return (kind, a);
        }
        throw new ArgumentException($"{owner}: unknown init '{spec}'; use one of: {Accepted} (e.g. normal:0.01).", nameof(spec));
    }
}
