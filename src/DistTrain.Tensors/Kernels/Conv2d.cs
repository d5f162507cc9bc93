// Fast convolution / pooling entry points. Until the optimized kernels land these call the reference.
namespace DistTrain.Tensors.Kernels;

public static class Conv2d
{
    /// <summary>x (B,C,H,W), w (OC,C,KH,KW), bias (OC) or empty -> y (B,OC,OH,OW) (overwritten).</summary>
    public static void Forward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y)
        => ConvReference.Forward(s, x, w, bias, y);

    /// <summary>dx (overwritten; may be empty to skip), dw and db accumulated into (db may be empty).</summary>
    public static void Backward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> dy,
        Span<float> dx, Span<float> dw, Span<float> db)
        => ConvReference.Backward(s, x, w, dy, dx, dw, db);
}

public static class Pool2d
{
    public static void MaxForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y, Span<int> argmax) => ConvReference.MaxPoolForward(s, x, y, argmax);
    public static void MaxBackward(in PoolShape s, ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx) => ConvReference.MaxPoolBackward(s, dy, argmax, dx);
    public static void AvgForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y) => ConvReference.AvgPoolForward(s, x, y);
    public static void AvgBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx) => ConvReference.AvgPoolBackward(s, dy, dx);
}
