// Convolution by im2col + one large Gemm.Sgemm per pass over the whole batch (N = B·OH·OW columns):
// forward yᵀ = w·col, weight gradient dw += dyᵀ·colᵀ (one FMA chain over all samples, so it is
// deterministic for any thread count), input gradient dcol = wᵀ·dyᵀ then col2im.
// col (C·KH·KW, B·OH·OW); rows (OC, B·OH·OW) holds yᵀ or dyᵀ. Letters as in Conv.cs, P = OH·OW.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class ConvGemm
{
    private static float* Ptr(float[] a) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));

    public static void Forward(in ConvShape s, float* x, float* w, float* bias, float* y, ConvWorkspace ws, int threads)
    {
        int kdim = s.InChannels * s.KernelH * s.KernelW, p = s.OutH * s.OutW, oc = s.OutChannels;
        long n = (long)s.Batch * p;
        float* col = Ptr(ConvWorkspace.Grow(ref ws.Col, kdim * n));
        float* rows = Ptr(ConvWorkspace.Grow(ref ws.Rows, oc * n));
        Im2Col(s, x, col, ws, threads);
        // yᵀ starts from the bias so each output is the chain bias, then (c,kh,kw) in order, like the reference.
        for (int o = 0; o < oc; o++) new Span<float>(rows + o * n, (int)n).Fill(bias == null ? 0f : bias[o]);
        Gemm.Sgemm(false, false, oc, (int)n, kdim, new ReadOnlySpan<float>(w, oc * kdim), kdim,
            new ReadOnlySpan<float>(col, (int)(kdim * n)), (int)n, new Span<float>(rows, (int)(oc * n)), (int)n,
            accumulate: true, threads: threads);
        Transpose(s, rows, y, toRows: false, ws, threads);
    }

    public static void Backward(in ConvShape s, float* x, float* w, float* dy, float* dx, float* dw, ConvWorkspace ws, int threads)
    {
        if (dx == null && dw == null) return;
        int kdim = s.InChannels * s.KernelH * s.KernelW, p = s.OutH * s.OutW, oc = s.OutChannels;
        long n = (long)s.Batch * p;
        float* col = Ptr(ConvWorkspace.Grow(ref ws.Col, kdim * n));
        float* rows = Ptr(ConvWorkspace.Grow(ref ws.Rows, oc * n));
        Transpose(s, rows, dy, toRows: true, ws, threads);
        var rowSpan = new ReadOnlySpan<float>(rows, (int)(oc * n));
        var colSpan = new Span<float>(col, (int)(kdim * n));
        if (dw != null)
        {
            Im2Col(s, x, col, ws, threads);
            Gemm.Sgemm(false, true, oc, kdim, (int)n, rowSpan, (int)n, colSpan, (int)n,
                new Span<float>(dw, oc * kdim), kdim, accumulate: true, threads: threads);
        }
        if (dx != null)
        {
            Gemm.Sgemm(true, false, kdim, (int)n, oc, new ReadOnlySpan<float>(w, oc * kdim), kdim, rowSpan, (int)n,
                colSpan, (int)n, accumulate: false, threads: threads);
            var job = ws.Col2Im;
            job.S = s; job.Col = col; job.Dx = dx;
            KernelThreads.For(job, s.Batch * s.InChannels, threads);
        }
    }

    private static void Im2Col(in ConvShape s, float* x, float* col, ConvWorkspace ws, int threads)
    {
        var job = ws.Im2Col;
        job.S = s; job.X = x; job.Col = col;
        KernelThreads.For(job, s.InChannels * s.KernelH * s.KernelW, threads);
    }

    private static void Transpose(in ConvShape s, float* rows, float* batched, bool toRows, ConvWorkspace ws, int threads)
    {
        var job = ws.Transpose;
        job.Rows = rows; job.Batched = batched; job.ToRows = toRows;
        job.Channels = s.OutChannels; job.Plane = s.OutH * s.OutW; job.Batch = s.Batch;
        KernelThreads.For(job, s.Batch, threads);
    }

    /// <summary>Column range [j0, j1) of output columns whose input column j·stride − pad + q is inside the image.</summary>
    private static void ValidCols(in ConvShape s, int q, out int j0, out int j1)
    {
        int lo = s.Pad - q;                                  // need j·stride ≥ pad − q
        j0 = lo <= 0 ? 0 : (lo + s.Stride - 1) / s.Stride;
        int hi = s.Width - 1 + s.Pad - q;                    // need j·stride ≤ W − 1 + pad − q
        j1 = hi < 0 ? 0 : Math.Min(s.OutW, hi / s.Stride + 1);
        if (j0 > j1) j0 = j1;
    }

    /// <summary>One col row r = (c, kh, kw): col[r, b·P + i·OW + j] = x[b, c, i·stride − pad + kh, j·stride − pad + kw] or 0.</summary>
    internal sealed class Im2ColJob : ParallelJob
    {
        public ConvShape S;
        public float* X, Col;
        public override void Run(int r, int slot)
        {
            var s = S;
            int q = r % s.KernelW, kh = r / s.KernelW % s.KernelH, c = r / (s.KernelW * s.KernelH);
            int oh = s.OutH, ow = s.OutW, p = oh * ow;
            ValidCols(s, q, out int j0, out int j1);
            float* dst = Col + (long)r * s.Batch * p;
            for (int b = 0; b < s.Batch; b++)
            {
                float* plane = X + ((long)b * s.InChannels + c) * s.Height * s.Width;
                for (int i = 0; i < oh; i++, dst += ow)
                {
                    int hi = i * s.Stride - s.Pad + kh;
                    if ((uint)hi >= (uint)s.Height) { new Span<float>(dst, ow).Clear(); continue; }
                    float* src = plane + hi * s.Width - s.Pad + q;
                    for (int j = 0; j < j0; j++) dst[j] = 0f;
                    if (s.Stride == 1) new ReadOnlySpan<float>(src + j0, j1 - j0).CopyTo(new Span<float>(dst + j0, j1 - j0));
                    else for (int j = j0; j < j1; j++) dst[j] = src[j * s.Stride];
                    for (int j = j1; j < ow; j++) dst[j] = 0f;
                }
            }
        }
    }

    /// <summary>One plane dx[b, c]: zero it, then add col rows (c, kh, kw) in (kh, kw) order.</summary>
    internal sealed class Col2ImJob : ParallelJob
    {
        public ConvShape S;
        public float* Col, Dx;
        public override void Run(int bc, int slot)
        {
            var s = S;
            int b = bc / s.InChannels, c = bc % s.InChannels;
            int oh = s.OutH, ow = s.OutW, p = oh * ow;
            float* plane = Dx + (long)bc * s.Height * s.Width;
            new Span<float>(plane, s.Height * s.Width).Clear();
            for (int kh = 0; kh < s.KernelH; kh++)
            for (int q = 0; q < s.KernelW; q++)
            {
                ValidCols(s, q, out int j0, out int j1);
                if (j1 <= j0) continue;
                int r = (c * s.KernelH + kh) * s.KernelW + q;
                float* src = Col + (long)r * s.Batch * p + (long)b * p;
                for (int i = 0; i < oh; i++)
                {
                    int hi = i * s.Stride - s.Pad + kh;
                    if ((uint)hi >= (uint)s.Height) continue;
                    float* dst = plane + hi * s.Width - s.Pad + q;
                    float* row = src + i * ow;
                    if (s.Stride == 1)
                    {
                        var d = new Span<float>(dst + j0, j1 - j0);
                        System.Numerics.Tensors.TensorPrimitives.Add(d, new ReadOnlySpan<float>(row + j0, j1 - j0), d);
                    }
                    else for (int j = j0; j < j1; j++) dst[j * s.Stride] += row[j];
                }
            }
        }
    }

    /// <summary>Sample b: rows[o, b·P ..] ⇄ batched[b, o, ..] (P floats per copy).</summary>
    internal sealed class TransposeJob : ParallelJob
    {
        public float* Rows, Batched;
        public bool ToRows;
        public int Channels, Plane, Batch;
        public override void Run(int b, int slot)
        {
            long n = (long)Batch * Plane;
            for (int o = 0; o < Channels; o++)
            {
                var a = new Span<float>(Rows + o * n + (long)b * Plane, Plane);
                var bt = new Span<float>(Batched + ((long)b * Channels + o) * Plane, Plane);
                if (ToRows) bt.CopyTo(a); else a.CopyTo(bt);
            }
        }
    }
}
