// Elementwise ops: the shared drivers that run an operator struct (Operators/) on the current SIMD
// path, and the named ops layers call. Ops TensorPrimitives has (Add, Multiply, Exp, Tanh, Sigmoid,
// Max, ...) are used from it directly; the ones here are those it lacks or that must be the same bits
// on every machine. Backward ops overwrite dx (a layer adds into its own gradient buffer if needed).
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using DistTrain.Tensors.Kernels.Operators;

namespace DistTrain.Tensors.Kernels;

public static class Elementwise
{
    /// <summary>y[i] = op(x[i]). y may be x itself (in place) but must not partially overlap it.</summary>
    public static void Unary<TOp>(ReadOnlySpan<float> x, Span<float> y, TOp op = default) where TOp : struct, IUnaryOperator
    {
        Same("x", x.Length, "y", y.Length);
        NoPartialOverlap("x", x, "y", y);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        switch (Simd.Path)
        {
            case SimdPath.Avx512:
                for (; i + 16 <= n; i += 16) op.Invoke(Vector512.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
                break;
            case SimdPath.Avx2:
                for (; i + 8 <= n; i += 8) op.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
                break;
        }
        // Tail (and the portable path): the scalar form, which matches a vector lane bit for bit.
        for (; i < n; i++) Unsafe.Add(ref yr, i) = op.Invoke(Unsafe.Add(ref xr, i));
    }

    /// <summary>z[i] = op(x[i], y[i]). z may be x or y itself but must not partially overlap either.</summary>
    public static void Binary<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z, TOp op = default) where TOp : struct, IBinaryOperator
    {
        Same("x", x.Length, "y", y.Length);
        Same("x", x.Length, "output", z.Length);
        NoPartialOverlap("x", x, "output", z);
        NoPartialOverlap("y", y, "output", z);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        ref float zr = ref MemoryMarshal.GetReference(z);
        int n = x.Length, i = 0;
        switch (Simd.Path)
        {
            case SimdPath.Avx512:
                for (; i + 16 <= n; i += 16)
                    op.Invoke(Vector512.LoadUnsafe(ref xr, (nuint)i), Vector512.LoadUnsafe(ref yr, (nuint)i)).StoreUnsafe(ref zr, (nuint)i);
                break;
            case SimdPath.Avx2:
                for (; i + 8 <= n; i += 8)
                    op.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i), Vector256.LoadUnsafe(ref yr, (nuint)i)).StoreUnsafe(ref zr, (nuint)i);
                break;
        }
        for (; i < n; i++) Unsafe.Add(ref zr, i) = op.Invoke(Unsafe.Add(ref xr, i), Unsafe.Add(ref yr, i));
    }

    // ---- named ops -------------------------------------------------------------------------------

    /// <summary>y = max(x, 0).</summary>
    public static void Relu(ReadOnlySpan<float> x, Span<float> y) { Same("x", x.Length, "y", y.Length); TensorPrimitives.Max(x, 0f, y); }
    /// <summary>dx = x &gt; 0 ? dy : 0 (x is the forward input).</summary>
    public static void ReluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) => Binary(x, dy, dx, new ReluBackwardOperator());
    public static void LeakyRelu(ReadOnlySpan<float> x, Span<float> y, float slope) => Unary(x, y, new LeakyReluOperator(slope));
    public static void LeakyReluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, float slope) => Binary(x, dy, dx, new LeakyReluBackwardOperator(slope));
    /// <summary>GELU, tanh approximation.</summary>
    public static void Gelu(ReadOnlySpan<float> x, Span<float> y) => Unary(x, y, new GeluOperator());
    public static void GeluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) => Binary(x, dy, dx, new GeluBackwardOperator());
    /// <summary>GELU, exact erf form (PyTorch's default).</summary>
    public static void GeluErf(ReadOnlySpan<float> x, Span<float> y) => Unary(x, y, new GeluErfOperator());
    public static void GeluErfBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) => Binary(x, dy, dx, new GeluErfBackwardOperator());
    /// <summary>dx = dy·y(1−y) from the sigmoid's output y.</summary>
    public static void SigmoidBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) => Binary(y, dy, dx, new SigmoidBackwardOperator());
    /// <summary>dx = dy·(1−y²) from the tanh's output y.</summary>
    public static void TanhBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) => Binary(y, dy, dx, new TanhBackwardOperator());
    public static void Clamp(ReadOnlySpan<float> x, Span<float> y, float lo, float hi)
    {
        if (!(lo <= hi)) throw new ArgumentException($"Clamp bounds must satisfy lo <= hi, got lo={lo}, hi={hi}.", nameof(lo));
        Unary(x, y, new ClampOperator(lo, hi));
    }
    /// <summary>exp(x) with the same bits on every SIMD path and machine (see FastExp).</summary>
    public static void Exp(ReadOnlySpan<float> x, Span<float> y) => Unary(x, y, new ExpOperator());
    /// <summary>y += a·x (one FMA per element).</summary>
    public static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y) => Binary(x, y, y, new AxpyOperator(a));

    /// <summary>x (rows, cols) += bias (cols) on every row.</summary>
    public static void AddBiasRows(Span<float> x, int rows, ReadOnlySpan<float> bias)
    {
        int cols = bias.Length;
        if (rows < 0 || x.Length != (long)rows * cols)
            throw new ArgumentException($"AddBiasRows: x has {x.Length} floats but (rows,cols)=({rows},{cols}) from bias ({cols}) needs {(long)rows * cols}.", nameof(x));
        for (int r = 0; r < rows; r++) { var row = x.Slice(r * cols, cols); TensorPrimitives.Add(row, bias, row); }
    }

    /// <summary>x (B, C, P) += bias[c] on every plane of P floats (NCHW bias).</summary>
    public static void AddBiasChannels(Span<float> x, int batch, ReadOnlySpan<float> bias, int plane)
    {
        int c = bias.Length;
        if (batch < 0 || plane < 0 || x.Length != (long)batch * c * plane)
            throw new ArgumentException($"AddBiasChannels: x has {x.Length} floats but (B,C,P)=({batch},{c},{plane}) needs {(long)batch * c * plane}.", nameof(x));
        for (int b = 0; b < batch; b++)
        for (int ch = 0; ch < c; ch++) { var p = x.Slice((b * c + ch) * plane, plane); TensorPrimitives.Add(p, bias[ch], p); }
    }

    private static void Same(string a, int na, string b, int nb)
    {
        if (na != nb) throw new ArgumentException($"Elementwise operands differ in length: {a} has {na} floats, {b} has {nb}.", b);
    }

    private static void NoPartialOverlap(string a, ReadOnlySpan<float> x, string b, ReadOnlySpan<float> y)
    {
        if (x.Overlaps(y, out int offset) && offset != 0)
            throw new ArgumentException($"Elementwise output {b} partially overlaps input {a} (offset {offset}); use the same span or a separate buffer.", b);
    }
}
