// The one shared driver for elementwise optimizer updates: an update is a ref struct operator written
// once over IVec (Vector512 / Vector256 / scalar); the driver runs the widest path Simd.Path allows and
// the scalar tail with the same operations, FMA included, so every path gives the same bits (contract 2).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DistTrain.Tensors;

namespace DistTrain.Nn.Optimizers;

/// <summary>A float vector of some width; the scalar and vector implementations round identically
/// (IEEE add/mul/div/sqrt are correctly rounded, and FMA is fused on every path).</summary>
internal interface IVec<TSelf> where TSelf : struct, IVec<TSelf>
{
    static abstract int Count { get; }
    static abstract TSelf Load(ref float origin, nuint i);
    static abstract void Store(TSelf v, ref float origin, nuint i);
    static abstract TSelf Splat(float x);
    static abstract TSelf operator +(TSelf a, TSelf b);
    static abstract TSelf operator -(TSelf a, TSelf b);
    static abstract TSelf operator *(TSelf a, TSelf b);
    static abstract TSelf operator /(TSelf a, TSelf b);
    /// <summary>a * b + c with one rounding.</summary>
    static abstract TSelf Fma(TSelf a, TSelf b, TSelf c);
    static abstract TSelf Sqrt(TSelf a);
}

internal readonly struct S1(float v) : IVec<S1>
{
    private readonly float _v = v;
    public static int Count => 1;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static S1 Load(ref float o, nuint i) => new(Unsafe.Add(ref o, i));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(S1 v, ref float o, nuint i) => Unsafe.Add(ref o, i) = v._v;
    public static S1 Splat(float x) => new(x);
    public static S1 operator +(S1 a, S1 b) => new(a._v + b._v);
    public static S1 operator -(S1 a, S1 b) => new(a._v - b._v);
    public static S1 operator *(S1 a, S1 b) => new(a._v * b._v);
    public static S1 operator /(S1 a, S1 b) => new(a._v / b._v);
    public static S1 Fma(S1 a, S1 b, S1 c) => new(MathF.FusedMultiplyAdd(a._v, b._v, c._v));
    public static S1 Sqrt(S1 a) => new(MathF.Sqrt(a._v));
}

internal readonly struct V256(Vector256<float> v) : IVec<V256>
{
    private readonly Vector256<float> _v = v;
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Load(ref float o, nuint i) => new(Vector256.LoadUnsafe(ref o, i));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V256 v, ref float o, nuint i) => v._v.StoreUnsafe(ref o, i);
    public static V256 Splat(float x) => new(Vector256.Create(x));
    public static V256 operator +(V256 a, V256 b) => new(a._v + b._v);
    public static V256 operator -(V256 a, V256 b) => new(a._v - b._v);
    public static V256 operator *(V256 a, V256 b) => new(a._v * b._v);
    public static V256 operator /(V256 a, V256 b) => new(a._v / b._v);
    public static V256 Fma(V256 a, V256 b, V256 c) => new(Vector256.FusedMultiplyAdd(a._v, b._v, c._v));
    public static V256 Sqrt(V256 a) => new(Vector256.Sqrt(a._v));
}

internal readonly struct V512(Vector512<float> v) : IVec<V512>
{
    private readonly Vector512<float> _v = v;
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Load(ref float o, nuint i) => new(Vector512.LoadUnsafe(ref o, i));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V512 v, ref float o, nuint i) => v._v.StoreUnsafe(ref o, i);
    public static V512 Splat(float x) => new(Vector512.Create(x));
    public static V512 operator +(V512 a, V512 b) => new(a._v + b._v);
    public static V512 operator -(V512 a, V512 b) => new(a._v - b._v);
    public static V512 operator *(V512 a, V512 b) => new(a._v * b._v);
    public static V512 operator /(V512 a, V512 b) => new(a._v / b._v);
    public static V512 Fma(V512 a, V512 b, V512 c) => new(Vector512.FusedMultiplyAdd(a._v, b._v, c._v));
    public static V512 Sqrt(V512 a) => new(Vector512.Sqrt(a._v));
}

/// <summary>An update of the elements [i, i + TV.Count) of the spans an operator holds.</summary>
internal interface IUpdateOp
{
    void Invoke<TV>(nuint i) where TV : struct, IVec<TV>;
}

internal static class Elementwise
{
    /// <summary>Tests only: run the Vector512 body even where Simd.Best is narrower (Vector512 then runs in
    /// software with the same IEEE results), so the 16-lane code is checked on every machine.</summary>
    internal static bool ForceVector512ForTests;

    /// <summary>Runs <paramref name="op"/> over [0, n): vector body on the current Simd.Path, scalar tail.</summary>
    public static void Run<TOp>(ref TOp op, int n) where TOp : IUpdateOp, allows ref struct
    {
        nuint i = 0, len = (nuint)n;
        switch (ForceVector512ForTests ? SimdPath.Avx512 : Simd.Path)
        {
            case SimdPath.Avx512:
                for (; i + 16 <= len; i += 16) op.Invoke<V512>(i);
                break;
            case SimdPath.Avx2:
                for (; i + 8 <= len; i += 8) op.Invoke<V256>(i);
                break;
        }
        for (; i < len; i++) op.Invoke<S1>(i);
    }

    /// <summary>Throws unless values, grads and the optimizer all have the same length.</summary>
    public static void CheckLengths(Optimizer opt, int values, int grads)
    {
        if (values != opt.Length || grads != opt.Length)
            throw new ArgumentException(
                $"{opt}: values ({values}) and grads ({grads}) must both have the optimizer's length {opt.Length}; " +
                "create the optimizer for the key range it updates.");
    }

    public static void CheckSegment(Optimizer opt, int values, int grads, int offset)
    {
        if (values != grads || offset < 0 || (long)offset + values > opt.Length)
            throw new ArgumentException(
                $"{opt}: a segment of {values} values ({grads} grads) at offset {offset} does not lie inside the optimizer's {opt.Length} values.");
    }

    public static void CheckStep(Optimizer opt, long t)
    {
        if (t < 1) throw new ArgumentOutOfRangeException(nameof(t), t, $"{opt}: the step count t is 1-based (the first update is t = 1).");
    }
}
