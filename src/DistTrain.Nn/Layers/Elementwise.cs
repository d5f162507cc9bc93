// Vectorized elementwise helpers and fixed-order reductions that the layers and losses share.
// Elementwise results do not depend on the vector width (no FMA contraction, same op per lane);
// reductions keep 8 fixed lanes so their bits do not depend on the machine (DESIGN contract 2).
// To be swapped for the operator structs of Tensors/Kernels/Operators when they land.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Nn.Layers;

internal static class Elementwise
{
    /// <summary>dx = y &gt; 0 ? dy : 0 (ReLU backward from its output).</summary>
    public static void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        int n = y.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
            var vdy = MemoryMarshal.Cast<float, Vector<float>>(dy);
            var vdx = MemoryMarshal.Cast<float, Vector<float>>(dx);
            for (int v = 0; v < vy.Length; v++)
                vdx[v] = Vector.ConditionalSelect(Vector.GreaterThan(vy[v], Vector<float>.Zero), vdy[v], Vector<float>.Zero);
            i = vy.Length * Vector<float>.Count;
        }
        for (; i < n; i++) dx[i] = y[i] > 0f ? dy[i] : 0f;
    }

    /// <summary>
    /// BatchNorm's normalise-and-scale row in one pass: x̂ = (x − mean)·invStd, y = x̂·w + b — the same operations in
    /// the same order as four TensorPrimitives passes (no fused multiply-add), so the same bits, reading x once.
    /// </summary>
    public static void NormalizeAffine(ReadOnlySpan<float> x, float mean, float invStd, float w, float b, Span<float> xhat, Span<float> y)
    {
        int n = x.Length, i = 0;
        if (xhat.Length < n || y.Length < n) throw new ArgumentException($"NormalizeAffine: outputs of {xhat.Length} and {y.Length} floats for {n} inputs.");
        if (Vector.IsHardwareAccelerated)
        {
            var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
            var vh = MemoryMarshal.Cast<float, Vector<float>>(xhat);
            var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
            Vector<float> m = new(mean), s = new(invStd), vw = new(w), vb = new(b);
            for (int v = 0; v < vx.Length; v++)
            {
                var h = (vx[v] - m) * s;
                vh[v] = h;
                vy[v] = h * vw + vb;
            }
            i = vx.Length * Vector<float>.Count;
        }
        for (; i < n; i++)
        {
            float h = (x[i] - mean) * invStd;
            xhat[i] = h;
            y[i] = h * w + b;
        }
    }

    /// <summary>BatchNorm's training-mode input gradient row in one pass: dx = ((x̂·a + dy) + c)·k, with a = −mean(dy·x̂),
    /// c = −mean(dy), k = w·invStd — the operations and order of the four-pass form.</summary>
    public static void NormalizeBackward(ReadOnlySpan<float> xhat, ReadOnlySpan<float> dy, float a, float c, float k, Span<float> dx)
    {
        int n = xhat.Length, i = 0;
        if (dy.Length < n || dx.Length < n) throw new ArgumentException($"NormalizeBackward: dy of {dy.Length} and dx of {dx.Length} floats for {n} values.");
        if (Vector.IsHardwareAccelerated)
        {
            var vh = MemoryMarshal.Cast<float, Vector<float>>(xhat);
            var vd = MemoryMarshal.Cast<float, Vector<float>>(dy);
            var vx = MemoryMarshal.Cast<float, Vector<float>>(dx);
            Vector<float> va = new(a), vc = new(c), vk = new(k);
            for (int v = 0; v < vh.Length; v++) vx[v] = (vh[v] * va + vd[v] + vc) * vk;
            i = vh.Length * Vector<float>.Count;
        }
        for (; i < n; i++) dx[i] = (xhat[i] * a + dy[i] + c) * k;
    }

    /// <summary>y = x &gt; 0 ? x : slope·x.</summary>
    public static void LeakyRelu(ReadOnlySpan<float> x, float slope, Span<float> y)
    {
        int n = x.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
            var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
            var s = new Vector<float>(slope);
            for (int v = 0; v < vx.Length; v++)
                vy[v] = Vector.ConditionalSelect(Vector.GreaterThan(vx[v], Vector<float>.Zero), vx[v], vx[v] * s);
            i = vx.Length * Vector<float>.Count;
        }
        for (; i < n; i++) y[i] = x[i] > 0f ? x[i] : x[i] * slope;
    }

    /// <summary>dx = x &gt; 0 ? dy : slope·dy.</summary>
    public static void LeakyReluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, float slope, Span<float> dx)
    {
        int n = x.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
            var vdy = MemoryMarshal.Cast<float, Vector<float>>(dy);
            var vdx = MemoryMarshal.Cast<float, Vector<float>>(dx);
            var s = new Vector<float>(slope);
            for (int v = 0; v < vx.Length; v++)
                vdx[v] = Vector.ConditionalSelect(Vector.GreaterThan(vx[v], Vector<float>.Zero), vdy[v], vdy[v] * s);
            i = vx.Length * Vector<float>.Count;
        }
        for (; i < n; i++) dx[i] = x[i] > 0f ? dy[i] : dy[i] * slope;
    }

    /// <summary>dx = dy · y · (1 − y) (sigmoid backward from its output).</summary>
    public static void SigmoidBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        int n = y.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
            var vdy = MemoryMarshal.Cast<float, Vector<float>>(dy);
            var vdx = MemoryMarshal.Cast<float, Vector<float>>(dx);
            for (int v = 0; v < vy.Length; v++) vdx[v] = vdy[v] * vy[v] * (Vector<float>.One - vy[v]);
            i = vy.Length * Vector<float>.Count;
        }
        for (; i < n; i++) dx[i] = dy[i] * y[i] * (1f - y[i]);
    }

    /// <summary>dx = dy · (1 − y²) (tanh backward from its output).</summary>
    public static void TanhBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        int n = y.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
            var vdy = MemoryMarshal.Cast<float, Vector<float>>(dy);
            var vdx = MemoryMarshal.Cast<float, Vector<float>>(dx);
            for (int v = 0; v < vy.Length; v++) vdx[v] = vdy[v] * (Vector<float>.One - vy[v] * vy[v]);
            i = vy.Length * Vector<float>.Count;
        }
        for (; i < n; i++) dx[i] = dy[i] * (1f - y[i] * y[i]);
    }

    /// <summary>Σ x in a fixed order: 8 lanes (element i goes to lane i mod 8), combined pairwise,
    /// then the tail in order. Same bits on every machine whatever its vector width.</summary>
    public static float Sum(ReadOnlySpan<float> x)
    {
        int n8 = x.Length & ~7;
        var acc = Vector256<float>.Zero;
        ref float r = ref MemoryMarshal.GetReference(x);
        for (int i = 0; i < n8; i += 8)
            acc += Vector256.LoadUnsafe(ref Unsafe.Add(ref r, i));
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (int i = n8; i < x.Length; i++) s += x[i];
        return s;
    }

    /// <summary>Σ a·b in the same fixed order as <see cref="Sum"/> (FMA per lane, FMA in the tail).</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n8 = a.Length & ~7;
        var acc = Vector256<float>.Zero;
        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(b);
        for (int i = 0; i < n8; i += 8)
            acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref ra, i)), Vector256.LoadUnsafe(ref Unsafe.Add(ref rb, i)), acc);
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (int i = n8; i < a.Length; i++) s = MathF.FusedMultiplyAdd(a[i], b[i], s);
        return s;
    }
}
