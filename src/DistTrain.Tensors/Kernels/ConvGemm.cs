// Convolution by im2col + Gemm.Sgemm, one sample at a time so its columns (C·KH·KW, P) stay in L2
// and the GEMMs write straight into y / read straight from dy (no transposes): forward y[b] = w·col_b
// from the bias; weight gradient dw += dy[b]·col_bᵀ chained over the samples of a fixed group (8 groups,
// whatever the thread count), groups added in order; input gradient dcol = wᵀ·dy[b], then col2im.
// Samples (forward) and groups (backward) run in parallel, each GEMM on one thread. P = OH·OW.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class ConvGemm
{
    /// <summary>Backward splits the batch into this many fixed groups: the weight gradient's bits depend on it, never on threads.</summary>
    public const int WeightGradGroups = 8;

    private static float* Ptr(float[] a) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));

    public static void Forward(in ConvShape s, float* x, float* w, float* bias, float* y, ConvWorkspace ws, int threads)
    {
        long colLen = (long)s.InChannels * s.KernelH * s.KernelW * s.OutH * s.OutW;
        ws.SlotScratch(threads, colLen + PaddedLength(s));
        var job = ws.GemmForward;
        job.ColLength = colLen; job.S = s; job.X = x; job.W = w; job.Bias = bias; job.Y = y; job.Scratch = ws.Scratch;
        KernelThreads.For(job, s.Batch, threads);
    }

    public static void Backward(in ConvShape s, float* x, float* w, float* dy, float* dx, float* dw, ConvWorkspace ws, int threads)
    {
        if (dx == null && dw == null) return;
        long colLen = (long)s.InChannels * s.KernelH * s.KernelW * s.OutH * s.OutW;
        ws.SlotScratch(threads, 2 * colLen + PaddedLength(s));
        int groups = Math.Min(s.Batch, WeightGradGroups), wl = s.WeightLength;
        float[] part = ConvWorkspace.Grow(ref ws.WeightPart, (long)groups * wl);
        var job = ws.GemmBackward;
        job.S = s; job.X = x; job.W = w; job.Dy = dy; job.Dx = dx; job.Part = dw == null ? null : Ptr(part);
        job.Groups = groups; job.Scratch = ws.Scratch; job.ColLength = colLen;
        KernelThreads.For(job, groups, threads);
        if (dw == null) return;
        var dws = new Span<float>(dw, wl);
        for (int g = 0; g < groups; g++)
            System.Numerics.Tensors.TensorPrimitives.Add(dws, part.AsSpan(g * wl, wl), dws);
    }

    /// <summary>Floats of per-thread scratch a sample needs besides its columns: the zero-padded image.</summary>
    public static long PaddedLength(in ConvShape s) => (long)s.InChannels * (s.Height + 2 * s.Pad) * (s.Width + 2 * s.Pad) + 8;

    /// <summary>Copies planes (n, h, w) into (n, h + 2·pad, w + 2·pad) with a zero border.</summary>
    private static void Pad(float* src, int n, int h, int w, int pad, float* dst)
    {
        int hp = h + 2 * pad, wp = w + 2 * pad;
        if (pad > 0) new Span<float>(dst, n * hp * wp).Clear();
        for (int c = 0; c < n; c++)
        for (int i = 0; i < h; i++)
            new ReadOnlySpan<float>(src + ((long)c * h + i) * w, w).CopyTo(new Span<float>(dst + ((long)c * hp + i + pad) * wp + pad, w));
    }

    /// <summary>
    /// col[(c,kh,kw), i·OW + j] = xp[c, i·stride + kh, j·stride + kw] from the zero-padded image xp of one
    /// sample. With stride 1 each col row is a contiguous slice, moved as 8-wide vectors whose last one
    /// overlaps (rows this short would spend more time in a general copy's set-up than in copying).
    /// </summary>
    private static void Im2Col(in ConvShape s, float* xp, float* col)
    {
        int oh = s.OutH, ow = s.OutW, hp = s.Height + 2 * s.Pad, wp = s.Width + 2 * s.Pad;
        float* dst = col;
        for (int c = 0; c < s.InChannels; c++)
        for (int kh = 0; kh < s.KernelH; kh++)
        for (int q = 0; q < s.KernelW; q++)
        {
            float* src = xp + ((long)c * hp + kh) * wp + q;
            for (int i = 0; i < oh; i++, dst += ow)
            {
                float* row = src + (long)i * s.Stride * wp;
                if (s.Stride != 1) { for (int j = 0; j < ow; j++) dst[j] = row[j * s.Stride]; continue; }
                if (ow < 8) { for (int j = 0; j < ow; j++) dst[j] = row[j]; continue; }
                int j8 = 0;
                for (; j8 + 8 < ow; j8 += 8) Vector256.Store(Vector256.Load(row + j8), dst + j8);
                Vector256.Store(Vector256.Load(row + ow - 8), dst + ow - 8);
            }
        }
    }

    /// <summary>dxp (the padded image of one sample) = 0, then col rows added in (c, kh, kw) order; then the
    /// interior is copied to dx. Each dx element gets one add per (kh, kw), in that order, on every path.</summary>
    private static void Col2Im(in ConvShape s, float* col, float* dxp, float* dx)
    {
        int oh = s.OutH, ow = s.OutW, hp = s.Height + 2 * s.Pad, wp = s.Width + 2 * s.Pad;
        new Span<float>(dxp, s.InChannels * hp * wp).Clear();
        var tailMask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(ow % 8)).AsSingle();
        float* src = col;
        for (int c = 0; c < s.InChannels; c++)
        for (int kh = 0; kh < s.KernelH; kh++)
        for (int q = 0; q < s.KernelW; q++)
        {
            float* dst0 = dxp + ((long)c * hp + kh) * wp + q;
            for (int i = 0; i < oh; i++, src += ow)
            {
                float* row = dst0 + (long)i * s.Stride * wp;
                if (s.Stride != 1) { for (int t = 0; t < ow; t++) row[t * s.Stride] += src[t]; continue; }
                int j = 0;
                for (; j + 8 <= ow; j += 8) Vector256.Store(Vector256.Load(row + j) + Vector256.Load(src + j), row + j);
                if (j < ow)
                {
                    // The partial last chunk adds 0 in the lanes past the row (they land in the padding or
                    // the next padded row and stay as they were; the reads stay inside the scratch margin).
                    var v = Vector256.ConditionalSelect(tailMask, Vector256.Load(src + j), Vector256<float>.Zero);
                    Vector256.Store(Vector256.Load(row + j) + v, row + j);
                }
            }
        }
        for (int c = 0; c < s.InChannels; c++)
        for (int i = 0; i < s.Height; i++)
            new ReadOnlySpan<float>(dxp + ((long)c * hp + i + s.Pad) * wp + s.Pad, s.Width)
                .CopyTo(new Span<float>(dx + ((long)c * s.Height + i) * s.Width, s.Width));
    }

    internal sealed class ForwardJob : ParallelJob
    {
        public ConvShape S;
        public float* X, W, Bias, Y;
        public long ColLength;
        public float[][] Scratch = [];
        public override void Run(int b, int slot)
        {
            var s = S;
            int kdim = s.InChannels * s.KernelH * s.KernelW, p = s.OutH * s.OutW, oc = s.OutChannels;
            float* col = Ptr(Scratch[slot]), xp = col + ColLength;
            Pad(X + (long)b * s.InChannels * s.Height * s.Width, s.InChannels, s.Height, s.Width, s.Pad, xp);
            Im2Col(s, xp, col);
            float* yb = Y + (long)b * oc * p;
            // y starts from the bias: each output is the chain bias, then (c,kh,kw) in order, like the reference.
            for (int o = 0; o < oc; o++) new Span<float>(yb + o * p, p).Fill(Bias == null ? 0f : Bias[o]);
            Gemm.Sgemm(false, false, oc, p, kdim, new ReadOnlySpan<float>(W, oc * kdim), kdim,
                new ReadOnlySpan<float>(col, kdim * p), p, new Span<float>(yb, oc * p), p, accumulate: true, threads: 1);
        }
    }

    internal sealed class BackwardJob : ParallelJob
    {
        public ConvShape S;
        public float* X, W, Dy, Dx, Part;
        public int Groups;
        public long ColLength;
        public float[][] Scratch = [];
        public override void Run(int g, int slot)
        {
            var s = S;
            int kdim = s.InChannels * s.KernelH * s.KernelW, p = s.OutH * s.OutW, oc = s.OutChannels, wl = s.WeightLength;
            float* col = Ptr(Scratch[slot]), dcol = col + ColLength, xp = dcol + ColLength;
            int b0 = (int)((long)g * s.Batch / Groups), b1 = (int)((long)(g + 1) * s.Batch / Groups);
            float* part = Part == null ? null : Part + (long)g * wl;
            if (part != null) new Span<float>(part, wl).Clear();
            var wSpan = new ReadOnlySpan<float>(W, oc * kdim);
            for (int b = b0; b < b1; b++)
            {
                var dyb = new ReadOnlySpan<float>(Dy + (long)b * oc * p, oc * p);
                if (part != null)
                {
                    Pad(X + (long)b * s.InChannels * s.Height * s.Width, s.InChannels, s.Height, s.Width, s.Pad, xp);
                    Im2Col(s, xp, col);
                    Gemm.Sgemm(false, true, oc, kdim, p, dyb, p, new ReadOnlySpan<float>(col, kdim * p), p,
                        new Span<float>(part, wl), kdim, accumulate: true, threads: 1);
                }
                if (Dx != null)
                {
                    Gemm.Sgemm(true, false, kdim, p, oc, wSpan, kdim, dyb, p, new Span<float>(dcol, kdim * p), p,
                        accumulate: false, threads: 1);
                    Col2Im(s, dcol, xp, Dx + (long)b * s.InChannels * s.Height * s.Width);
                }
            }
        }
    }
}
