// Naive convolution and pooling: the test oracle and the fallback for awkward shapes.
// Forward reduces over (c, kh, kw) in that order with FMA, from the bias.
namespace DistTrain.Tensors.Kernels;

public static class ConvReference
{
    // x (B,C,H,W), w (OC,C,KH,KW), bias (OC) or empty -> y (B,OC,OH,OW)
    public static void Forward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y)
    {
        s.Validate();
        int oh = s.OutH, ow = s.OutW;
        for (int b = 0; b < s.Batch; b++)
        for (int o = 0; o < s.OutChannels; o++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        {
            float acc = bias.IsEmpty ? 0f : bias[o];
            for (int c = 0; c < s.InChannels; c++)
            for (int p = 0; p < s.KernelH; p++)
            for (int q = 0; q < s.KernelW; q++)
            {
                int hi = i * s.Stride - s.Pad + p, wi = j * s.Stride - s.Pad + q;
                if ((uint)hi >= (uint)s.Height || (uint)wi >= (uint)s.Width) continue;
                acc = MathF.FusedMultiplyAdd(x[((b * s.InChannels + c) * s.Height + hi) * s.Width + wi],
                    w[((o * s.InChannels + c) * s.KernelH + p) * s.KernelW + q], acc);
            }
            y[((b * s.OutChannels + o) * oh + i) * ow + j] = acc;
        }
    }

    // dy (B,OC,OH,OW) -> dx (B,C,H,W) (overwritten), dw (OC,C,KH,KW) and db (OC) (accumulated into)
    public static void Backward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> dy,
        Span<float> dx, Span<float> dw, Span<float> db)
    {
        s.Validate();
        int oh = s.OutH, ow = s.OutW;
        if (!dx.IsEmpty) dx.Slice(0, s.InputLength).Clear();
        for (int b = 0; b < s.Batch; b++)
        for (int o = 0; o < s.OutChannels; o++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        {
            float g = dy[((b * s.OutChannels + o) * oh + i) * ow + j];
            if (!db.IsEmpty) db[o] += g;
            for (int c = 0; c < s.InChannels; c++)
            for (int p = 0; p < s.KernelH; p++)
            for (int q = 0; q < s.KernelW; q++)
            {
                int hi = i * s.Stride - s.Pad + p, wi = j * s.Stride - s.Pad + q;
                if ((uint)hi >= (uint)s.Height || (uint)wi >= (uint)s.Width) continue;
                int xi = ((b * s.InChannels + c) * s.Height + hi) * s.Width + wi;
                int wk = ((o * s.InChannels + c) * s.KernelH + p) * s.KernelW + q;
                if (!dw.IsEmpty) dw[wk] += g * x[xi];
                if (!dx.IsEmpty) dx[xi] += g * w[wk];
            }
        }
    }

    // Max pooling: y (B,C,OH,OW); argmax (same length as y) records the input index of each max.
    public static void MaxPoolForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y, Span<int> argmax)
    {
        s.Validate();
        int oh = s.OutH, ow = s.OutW;
        for (int bc = 0; bc < s.Batch * s.Channels; bc++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        {
            float best = float.NegativeInfinity; int bi = -1;
            for (int p = 0; p < s.Kernel; p++)
            for (int q = 0; q < s.Kernel; q++)
            {
                int xi = (bc * s.Height + i * s.Stride + p) * s.Width + j * s.Stride + q;
                if (x[xi] > best || bi < 0) { best = x[xi]; bi = xi; }
            }
            int yi = (bc * oh + i) * ow + j;
            y[yi] = best; argmax[yi] = bi;
        }
    }

    public static void MaxPoolBackward(in PoolShape s, ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx)
    {
        dx.Slice(0, s.InputLength).Clear();
        for (int yi = 0; yi < s.OutputLength; yi++) dx[argmax[yi]] += dy[yi];
    }

    public static void AvgPoolForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        s.Validate();
        int oh = s.OutH, ow = s.OutW; float inv = 1f / (s.Kernel * s.Kernel);
        for (int bc = 0; bc < s.Batch * s.Channels; bc++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        {
            float acc = 0;
            for (int p = 0; p < s.Kernel; p++)
            for (int q = 0; q < s.Kernel; q++)
                acc += x[(bc * s.Height + i * s.Stride + p) * s.Width + j * s.Stride + q];
            y[(bc * oh + i) * ow + j] = acc * inv;
        }
    }

    public static void AvgPoolBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx)
    {
        s.Validate();
        int oh = s.OutH, ow = s.OutW; float inv = 1f / (s.Kernel * s.Kernel);
        dx.Slice(0, s.InputLength).Clear();
        for (int bc = 0; bc < s.Batch * s.Channels; bc++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        {
            float g = dy[(bc * oh + i) * ow + j] * inv;
            for (int p = 0; p < s.Kernel; p++)
            for (int q = 0; q < s.Kernel; q++)
                dx[(bc * s.Height + i * s.Stride + p) * s.Width + j * s.Stride + q] += g;
        }
    }
}
