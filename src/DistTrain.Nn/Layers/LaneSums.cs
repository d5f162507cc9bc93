// Fixed-order reductions for the normalization layers: 8 float lanes (Vector256, whatever the
// machine's width) combined in a fixed order, so the bits never depend on the SIMD path (DESIGN 2).
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Nn.Layers;

internal static class LaneSums
{
    /// <summary>Σ x, in 8 fixed lanes (float), lanes then tail added in order in double.</summary>
    public static double Sum(ReadOnlySpan<float> x)
    {
        var acc = Vector256<float>.Zero;
        var v = MemoryMarshal.Cast<float, Vector256<float>>(x);
        for (int i = 0; i < v.Length; i++) acc += v[i];
        double s = Combine(acc);
        for (int i = v.Length * 8; i < x.Length; i++) s += x[i];
        return s;
    }

    /// <summary>Σ (x - mean)², two-pass variance's second pass.</summary>
    public static double SumSquaredDeviation(ReadOnlySpan<float> x, float mean)
    {
        var acc = Vector256<float>.Zero;
        var m = Vector256.Create(mean);
        var v = MemoryMarshal.Cast<float, Vector256<float>>(x);
        for (int i = 0; i < v.Length; i++) { var d = v[i] - m; acc += d * d; }
        double s = Combine(acc);
        for (int i = v.Length * 8; i < x.Length; i++) { float d = x[i] - mean; s += d * d; }
        return s;
    }

    /// <summary>Σ x·y (multiply then add, never fused, so every path gives the same bits).</summary>
    public static double Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        var acc = Vector256<float>.Zero;
        var vx = MemoryMarshal.Cast<float, Vector256<float>>(x);
        var vy = MemoryMarshal.Cast<float, Vector256<float>>(y[..x.Length]);
        for (int i = 0; i < vx.Length; i++) acc += vx[i] * vy[i];
        double s = Combine(acc);
        for (int i = vx.Length * 8; i < x.Length; i++) s += x[i] * y[i];
        return s;
    }

    private static double Combine(Vector256<float> acc)
    {
        double s = 0;
        for (int l = 0; l < 8; l++) s += acc.GetElement(l);
        return s;
    }
}
