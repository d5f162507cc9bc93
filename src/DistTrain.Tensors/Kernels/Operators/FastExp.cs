// exp(x) from +, ×, FMA, round-to-even and exponent bits only (Cephes expf polynomial, ~1 ulp), in
// scalar, Vector256 and Vector512 forms that give identical bits: MathF.Exp and TensorPrimitives.Exp
// may differ between libm versions and vector widths, which would break cross-machine determinism.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels.Operators;

public static class FastExp
{
    private const float Lo = -87f, Hi = 88f;            // 2^n stays a normal float for n = round(x·log2 e)
    private const float Log2E = 1.44269504088896341f, C1 = 0.693359375f, C2 = -2.12194440e-4f;
    private const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
        P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /// <summary>exp(x); 0 below −87, exp(88) above 88, NaN stays NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp(float x)
    {
        float xc = MathF.Min(MathF.Max(x, Lo), Hi);
        float fx = MathF.Round(xc * Log2E);
        float r = MathF.FusedMultiplyAdd(fx, -C1, xc);
        r = MathF.FusedMultiplyAdd(fx, -C2, r);
        float z = r * r;
        float p = MathF.FusedMultiplyAdd(P0, r, P1);
        p = MathF.FusedMultiplyAdd(p, r, P2);
        p = MathF.FusedMultiplyAdd(p, r, P3);
        p = MathF.FusedMultiplyAdd(p, r, P4);
        p = MathF.FusedMultiplyAdd(p, r, P5);
        p = MathF.FusedMultiplyAdd(p, z, r) + 1f;
        float y = p * BitConverter.Int32BitsToSingle(((int)fx + 127) << 23);
        return x < Lo ? 0f : float.IsNaN(x) ? x : y;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var xc = Vector256.Min(Vector256.Max(x, Vector256.Create(Lo)), Vector256.Create(Hi));
        var fx = Vector256.Round(xc * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(fx, Vector256.Create(-C1), xc);
        r = Vector256.FusedMultiplyAdd(fx, Vector256.Create(-C2), r);
        var z = r * r;
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, z, r) + Vector256.Create(1f);
        var y = p * ((Vector256.ConvertToInt32(fx) + Vector256.Create(127)) << 23).AsSingle();
        y = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(Lo)), Vector256<float>.Zero, y);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), y, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var xc = Vector512.Min(Vector512.Max(x, Vector512.Create(Lo)), Vector512.Create(Hi));
        var fx = Vector512.Round(xc * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(fx, Vector512.Create(-C1), xc);
        r = Vector512.FusedMultiplyAdd(fx, Vector512.Create(-C2), r);
        var z = r * r;
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, z, r) + Vector512.Create(1f);
        var y = p * ((Vector512.ConvertToInt32(fx) + Vector512.Create(127)) << 23).AsSingle();
        y = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(Lo)), Vector512<float>.Zero, y);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), y, x);
    }
}
