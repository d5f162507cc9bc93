// GELU: PyTorch's default exact form y = x·Φ(x) = ½x(1 + erf(x/√2)), or approximate="tanh":
// y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))). erf is Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7,
// below float32 resolution of Φ), as in PyTorch's vectorized CPU erf; the exact form runs on the SIMD
// core (Elementwise.GeluErf), the same bits on every path.
namespace DistTrain.Nn.Layers;

public sealed class GELU : Activation
{
    private const float Sqrt2OverPi = 0.79788456080286536f, Kappa = 0.044715f;

    public GELU(string approximate = "none")
    {
        if (approximate is not ("none" or "tanh"))
            throw new ArgumentException($"GELU: approximate must be \"none\" (exact erf, PyTorch's default) or \"tanh\", not \"{approximate}\".");
        Approximate = approximate;
    }

    public string Approximate { get; }

    protected override void Apply(ReadOnlySpan<float> x, Span<float> y)
    {
        if (Approximate == "tanh")
            for (int i = 0; i < x.Length; i++)
            {
                float v = x[i];
                y[i] = 0.5f * v * (1f + MathF.Tanh(Sqrt2OverPi * (v + Kappa * v * v * v)));
            }
        else
            DistTrain.Tensors.Kernels.Elementwise.GeluErf(x, y);
    }

    // dy/dx = Φ(x) + x·φ(x) (exact); for tanh: ½(1+t) + ½x(1−t²)·√(2/π)(1 + 3κx²)
    protected override void Gradient(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        if (Approximate == "tanh")
            for (int i = 0; i < x.Length; i++)
            {
                float v = x[i], t = MathF.Tanh(Sqrt2OverPi * (v + Kappa * v * v * v));
                dx[i] = dy[i] * (0.5f * (1f + t) + 0.5f * v * (1f - t * t) * Sqrt2OverPi * (1f + 3f * Kappa * v * v));
            }
        else
            DistTrain.Tensors.Kernels.Elementwise.GeluErfBackward(x, dy, dx);
    }

    /// <summary>erf(x), Abramowitz–Stegun 7.1.26, odd-symmetric; absolute error ≤ 1.5e-7.</summary>
    public static float Erf(float x)
    {
        float a = MathF.Abs(x);
        float t = 1f / (1f + 0.3275911f * a);
        float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
        float r = 1f - poly * MathF.Exp(-a * a);
        return x < 0 ? -r : r;
    }

    public override string ToString() => Approximate == "none" ? "GELU()" : "GELU(approximate='tanh')";
}
