// Convolution by im2col + Gemm.Sgemm, one sample at a time so its columns (C·KH·KW, P) stay in L2:
// forward yᵀ[b] = col_bᵀ·wᵀ from the bias, then transposed into y; weight gradient dw += dy[b]·col_bᵀ
// chained over the samples of a fixed group (8 groups, whatever the thread count), groups added in order;
// input gradient dcol = wᵀ·dy[b], then col2im. Samples (forward) and groups (backward) run in parallel,
// each GEMM on one thread. P = OH·OW.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class ConvGemm
{
    /// <summary>Backward splits the batch into this many fixed groups: the weight gradient's bits depend on it, never on threads.</summary>
    public const int WeightGradGroups = 8;

    private static float* Ptr(float[] a) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));

    /// <summary>
    /// Items call Gemm.Sgemm on whichever thread runs them, and it packs into that thread's GemmWorkspace. Which items
    /// the calling thread gets depends on the scheduler, so without this its workspace could first be allocated in a
    /// warm call (under load the helper may take every item of the warm-up calls): a steady-state allocation that
    /// came and went with the machine's load. Ensured here, outside the items, it exists from the first call.
    /// </summary>
    private static void EnsureCallerGemmWorkspace()
    {
        var kernel = GemmKernels.Select(Simd.Path);
        GemmWorkspace.ForThread(kernel.MR, kernel.NR);
    }

    public static void Forward(in ConvShape s, float* x, float* w, float* bias, float* y, ConvWorkspace ws, int threads)
    {
        long colLen = (long)s.InChannels * s.KernelH * s.KernelW * s.OutH * s.OutW;
        ws.SlotScratch(threads, colLen + PaddedLength(s) + (long)s.OutH * s.OutW * s.OutChannels);
        var job = ws.GemmForward;
        job.ColLength = colLen; job.S = s; job.X = x; job.W = w; job.Bias = bias; job.Y = y; job.Scratch = ws.Scratch;
        EnsureCallerGemmWorkspace();
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
        EnsureCallerGemmWorkspace();
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
            CopyRow(src + ((long)c * h + i) * w, dst + ((long)c * hp + i + pad) * wp + pad, w);
    }

    // Rows here are 7..30 floats: 8-wide vectors with an overlapping last one beat a general copy's set-up.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRow(float* src, float* dst, int n)
    {
        if (n < 8) { for (int j = 0; j < n; j++) dst[j] = src[j]; return; }
        for (int j = 0; j + 8 < n; j += 8) Vector256.Store(Vector256.Load(src + j), dst + j);
        Vector256.Store(Vector256.Load(src + n - 8), dst + n - 8);
    }

    /// <summary>
    /// col[(c,kh,kw), i·OW + j] = xp[c, i·stride + kh, j·stride + kw] from the zero-padded image xp of one
    /// sample. With stride 1 each col row is OH contiguous slices of the padded rows. Sizes are read into
    /// locals first: the stores through float* could alias the shape, which would reload it every row.
    /// </summary>
    private static void Im2Col(in ConvShape s, float* xp, float* col)
    {
        int oh = s.OutH, ow = s.OutW, hp = s.Height + 2 * s.Pad, wp = s.Width + 2 * s.Pad;
        int channels = s.InChannels, kernelH = s.KernelH, kernelW = s.KernelW, stride = s.Stride;
        float* dst = col;
        for (int c = 0; c < channels; c++)
        for (int kh = 0; kh < kernelH; kh++)
        for (int q = 0; q < kernelW; q++)
        {
            float* src = xp + ((long)c * hp + kh) * wp + q;
            if (stride == 1)
                for (int i = 0; i < oh; i++, dst += ow, src += wp) CopyRow(src, dst, ow);
            else
                for (int i = 0; i < oh; i++, dst += ow)
                {
                    float* row = src + (long)i * stride * wp;
                    for (int j = 0; j < ow; j++) dst[j] = row[j * stride];
                }
        }
    }

    /// <summary>dxp (the padded image of one sample) = 0, then col rows added in (c, kh, kw) order; then the
    /// interior is copied to dx. Each dx element gets one add per (kh, kw), in that order, on every path.</summary>
    private static void Col2Im(in ConvShape s, float* col, float* dxp, float* dx)
    {
        int oh = s.OutH, ow = s.OutW, hp = s.Height + 2 * s.Pad, wp = s.Width + 2 * s.Pad;
        int channels = s.InChannels, kernelH = s.KernelH, kernelW = s.KernelW, stride = s.Stride;
        int height = s.Height, width = s.Width, pad = s.Pad;
        new Span<float>(dxp, channels * hp * wp).Clear();
        var tailMask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(ow % 8)).AsSingle();
        float* src = col;
        for (int c = 0; c < channels; c++)
        for (int kh = 0; kh < kernelH; kh++)
        for (int q = 0; q < kernelW; q++)
        {
            float* dst0 = dxp + ((long)c * hp + kh) * wp + q;
            for (int i = 0; i < oh; i++, src += ow)
            {
                float* row = dst0 + (long)i * stride * wp;
                if (stride != 1) { for (int t = 0; t < ow; t++) row[t * stride] += src[t]; continue; }
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
        for (int c = 0; c < channels; c++)
        for (int i = 0; i < height; i++)
            CopyRow(dxp + ((long)c * hp + i + pad) * wp + pad, dx + ((long)c * height + i) * width, width);
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
            // Computed transposed, yᵀ[b] (P, OC) = colᵀ·wᵀ: P = OH·OW positions fill the kernel's MR rows and
            // OC its NR columns far better than the other way round (64 = 10⅔ tiles of 6, 196 = 12¼ of 16), and
            // col is read in place. Each output is still the chain bias, then (c,kh,kw) in order, like the reference.
            float* yt = xp + PaddedLength(s);
            for (int i = 0; i < p; i++)
                if (Bias == null) new Span<float>(yt + (long)i * oc, oc).Clear();
                else new ReadOnlySpan<float>(Bias, oc).CopyTo(new Span<float>(yt + (long)i * oc, oc));
            Gemm.Sgemm(true, true, p, oc, kdim, new ReadOnlySpan<float>(col, kdim * p), p,
                new ReadOnlySpan<float>(W, oc * kdim), kdim, new Span<float>(yt, p * oc), oc, accumulate: true, threads: 1);
            Transpose(yt, p, oc, Y + (long)b * oc * p);
        }
    }

    /// <summary>dst (cols, rows) = src (rows, cols)ᵀ: 8x8 register blocks, the edges element by element.</summary>
    private static void Transpose(float* src, int rows, int cols, float* dst)
    {
        int r8 = Avx.IsSupported ? rows / 8 * 8 : 0, c8 = Avx.IsSupported ? cols / 8 * 8 : 0;
        for (int r = 0; r < r8; r += 8)
            for (int c = 0; c < c8; c += 8)
                GemmPack.Transpose8x8(src + (long)r * cols + c, cols, dst + (long)c * rows + r, rows);
        for (int c = 0; c < cols; c++)
        {
            int r = c < c8 ? r8 : 0;
            for (; r < rows; r++) dst[(long)c * rows + r] = src[(long)r * cols + c];
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
