// Parameter initializers with PyTorch's definitions (torch.nn.init): zeros, normal, uniform,
// Xavier/Glorot and He/Kaiming (uniform and normal), drawn from a seeded System.Random so a model's
// initial weights are a function of its seed. Parsed from "zeros", "normal:0.01", "xavier", "he_normal", ...
using System.Globalization;
using DistTrain.Tensors;

namespace DistTrain.Nn.Init;

public static class Initializers
{
    /// <summary>PyTorch's _calculate_fan_in_and_fan_out: shape (out, in, k...) -> fan_in = in·Πk,
    /// fan_out = out·Πk. Needs at least two dimensions (a bias has no fan).</summary>
    public static (int FanIn, int FanOut) Fans(ReadOnlySpan<int> shape)
    {
        if (shape.Length < 2)
            throw new ArgumentException(
                $"Fan-in and fan-out need a shape with at least 2 dimensions, got {Tensor.ShapeString(shape)}; " +
                "initialise biases with zeros, normal or uniform.", nameof(shape));
        int receptive = 1;
        for (int i = 2; i < shape.Length; i++) receptive *= shape[i];
        return (shape[1] * receptive, shape[0] * receptive);
    }

    public static void Zeros(Span<float> dst) => dst.Clear();

    public static void Constant(Span<float> dst, float value) => dst.Fill(value);

    /// <summary>Uniform on [a, b).</summary>
    public static void Uniform(Span<float> dst, Random rng, double a, double b)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (!(b >= a)) throw new ArgumentException($"Uniform initializer needs a <= b, got a={a}, b={b}.", nameof(b));
        for (int i = 0; i < dst.Length; i++)
        {
            var x = (float)(a + (b - a) * rng.NextDouble());
            dst[i] = x < b || a == b ? x : MathF.BitDecrement(x); // rounding to float may reach b; keep [a, b)
        }
    }

    /// <summary>Normal(mean, std²), Box–Muller on pairs of uniform draws.</summary>
    public static void Normal(Span<float> dst, Random rng, double mean, double std)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (!(std >= 0)) throw new ArgumentException($"Normal initializer needs std >= 0, got {std}.", nameof(std));
        for (int i = 0; i < dst.Length; i += 2)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble(); // u1 in (0, 1]: log is finite
            double r = Math.Sqrt(-2.0 * Math.Log(u1)), th = 2.0 * Math.PI * u2;
            dst[i] = (float)(mean + std * r * Math.Cos(th));
            if (i + 1 < dst.Length) dst[i + 1] = (float)(mean + std * r * Math.Sin(th));
        }
    }

    /// <summary>Glorot uniform: U(−a, a), a = gain·√(6/(fan_in + fan_out)).</summary>
    public static void XavierUniform(Span<float> dst, ReadOnlySpan<int> shape, Random rng, double gain = 1.0)
    {
        var (fi, fo) = Fans(shape);
        var a = gain * Math.Sqrt(6.0 / (fi + fo));
        Uniform(dst, rng, -a, a);
    }

    /// <summary>Glorot normal: N(0, std²), std = gain·√(2/(fan_in + fan_out)).</summary>
    public static void XavierNormal(Span<float> dst, ReadOnlySpan<int> shape, Random rng, double gain = 1.0)
    {
        var (fi, fo) = Fans(shape);
        Normal(dst, rng, 0, gain * Math.Sqrt(2.0 / (fi + fo)));
    }

    /// <summary>Kaiming uniform, mode fan_in: U(−b, b), b = gain·√(3/fan_in); gain √2 for ReLU.</summary>
    public static void HeUniform(Span<float> dst, ReadOnlySpan<int> shape, Random rng, double gain = 1.4142135623730951)
    {
        var (fi, _) = Fans(shape);
        var b = gain * Math.Sqrt(3.0 / fi);
        Uniform(dst, rng, -b, b);
    }

    /// <summary>Kaiming normal, mode fan_in: N(0, std²), std = gain/√fan_in; gain √2 for ReLU.</summary>
    public static void HeNormal(Span<float> dst, ReadOnlySpan<int> shape, Random rng, double gain = 1.4142135623730951)
    {
        var (fi, _) = Fans(shape);
        Normal(dst, rng, 0, gain / Math.Sqrt(fi));
    }
}

/// <summary>An initializer named in a model spec; <see cref="Fill"/> writes a parameter's values.</summary>
public sealed class Initializer
{
    private readonly Action<Span<float>, int[], Random> _fill;
    private readonly string _text;

    private Initializer(string text, Action<Span<float>, int[], Random> fill) => (_text, _fill) = (text, fill);

    public static IReadOnlyList<string> Forms { get; } =
        ["zeros", "constant:C", "normal:STD", "normal:MEAN:STD", "uniform:A", "uniform:A:B", "xavier", "xavier_normal", "he", "he_normal"];

    /// <summary>Fills <paramref name="p"/> (whose shape gives the fans) from <paramref name="rng"/>.</summary>
    public void Fill(Tensor p, Random rng)
    {
        ArgumentNullException.ThrowIfNull(p);
        _fill(p.Span, p.Shape, rng);
    }

    public void Fill(Span<float> dst, int[] shape, Random rng) => _fill(dst, shape, rng);

    public override string ToString() => _text;

    /// <summary>Parses "zeros", "constant:C", "normal:STD" or "normal:MEAN:STD", "uniform:A" (U(−A, A)) or
    /// "uniform:A:B", "xavier" (= xavier_uniform), "xavier_normal", "he" (= he_uniform, kaiming), "he_normal";
    /// xavier and he forms take an optional gain, "xavier:GAIN".</summary>
    public static Initializer Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var parts = spec.Trim().ToLowerInvariant().Split(':');
        double N(int i) => i < parts.Length && double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
            ? v : throw new ArgumentException($"Initializer '{spec}': '{(i < parts.Length ? parts[i] : "")}' is not a number. Valid forms: {string.Join(", ", Forms)}.", nameof(spec));
        double Gain() => parts.Length == 2 ? N(1) : parts.Length == 1 ? double.NaN
            : throw new ArgumentException($"Initializer '{spec}' has too many fields. Valid forms: {string.Join(", ", Forms)}.", nameof(spec));
        const double Sqrt2 = 1.4142135623730951;
        return (parts[0], parts.Length) switch
        {
            ("zeros", 1) => new(spec, (d, _, _) => Initializers.Zeros(d)),
            ("constant", 2) => Const(spec, (float)N(1)),
            ("normal", 2) => Normal(spec, 0, N(1)),
            ("normal", 3) => Normal(spec, N(1), N(2)),
            ("uniform", 2) => Uniform(spec, -N(1), N(1)),
            ("uniform", 3) => Uniform(spec, N(1), N(2)),
            ("xavier" or "xavier_uniform" or "glorot", _) => Fans(spec, Gain(), 1.0, Initializers.XavierUniform),
            ("xavier_normal" or "glorot_normal", _) => Fans(spec, Gain(), 1.0, Initializers.XavierNormal),
            ("he" or "he_uniform" or "kaiming" or "kaiming_uniform", _) => Fans(spec, Gain(), Sqrt2, Initializers.HeUniform),
            ("he_normal" or "kaiming_normal", _) => Fans(spec, Gain(), Sqrt2, Initializers.HeNormal),
            _ => throw new ArgumentException($"Unknown initializer '{spec}'. Valid forms: {string.Join(", ", Forms)}.", nameof(spec)),
        };
    }

    private static Initializer Const(string spec, float c) => new(spec, (d, _, _) => Initializers.Constant(d, c));

    private static Initializer Normal(string spec, double mean, double std) =>
        std >= 0 ? new(spec, (d, _, r) => Initializers.Normal(d, r, mean, std))
        : throw new ArgumentException($"Initializer '{spec}': std must be >= 0.", nameof(spec));

    private static Initializer Uniform(string spec, double a, double b) =>
        b >= a ? new(spec, (d, _, r) => Initializers.Uniform(d, r, a, b))
        : throw new ArgumentException($"Initializer '{spec}': the bounds must satisfy a <= b.", nameof(spec));

    private delegate void FanInit(Span<float> dst, ReadOnlySpan<int> shape, Random rng, double gain);

    private static Initializer Fans(string spec, double gain, double defaultGain, FanInit init)
    {
        var g = double.IsNaN(gain) ? defaultGain : gain;
        return new(spec, (d, shape, r) => init(d, shape, r, g));
    }
}
