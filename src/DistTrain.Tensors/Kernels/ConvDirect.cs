// Direct 3x3, stride-1 convolution for a tiny reduction (C ≤ 2, e.g. the 1→32 input layer), where
// im2col + GEMM (K = 9) moves more bytes than it computes. Each sample's input (or output gradient)
// is copied once into a zero-padded per-thread plane, so the inner loops have no bounds tests.
// Vector256 (8 lanes) on every SIMD path: the weight gradient's lane structure is part of its bit
// definition, and the other loops are lane-independent FMA chains in (c, kh, kw) order.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class ConvDirect
{
    public static bool Applies(in ConvShape s) =>
        s.Stride == 1 && s.KernelH == 3 && s.KernelW == 3 && s.Pad <= 2 && s.InChannels <= 2
        && s.OutW >= 8 && s.Width >= 8;

    private static float* Ptr(float[] a) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));

    public static void Forward(in ConvShape s, float* x, float* w, float* bias, float* y, ConvWorkspace ws, int threads)
    {
        int hp = s.Height + 2 * s.Pad, wp = s.Width + 2 * s.Pad;
        ws.SlotScratch(threads, (long)s.InChannels * hp * wp);
        var job = ws.DirectForward;
        job.S = s; job.X = x; job.W = w; job.Bias = bias; job.Y = y; job.Scratch = ws.Scratch;
        KernelThreads.For(job, s.Batch, threads);
    }

    public static void Backward(in ConvShape s, float* x, float* w, float* dy, float* dx, float* dw, ConvWorkspace ws, int threads)
    {
        if (dx == null && dw == null) return;
        int wl = s.WeightLength;
        long padX = (long)s.InChannels * (s.Height + 2 * s.Pad) * (s.Width + 2 * s.Pad);
        long padDy = (long)s.OutChannels * (s.Height + 2) * (s.Width + 2);
        ws.SlotScratch(threads, Math.Max(padX, padDy) + 16);   // + margin for the partial-chunk loads
        float[] part = ConvWorkspace.Grow(ref ws.WeightPart, (long)s.Batch * wl);
        var job = ws.DirectBackward;
        job.S = s; job.X = x; job.W = w; job.Dy = dy; job.Dx = dx; job.Part = dw == null ? null : Ptr(part);
        job.Scratch = ws.Scratch;
        KernelThreads.For(job, s.Batch, threads);
        if (dw == null) return;
        // Samples' partial weight gradients are added in sample order: same bits for any thread count.
        var dws = new Span<float>(dw, wl);
        for (int b = 0; b < s.Batch; b++)
            System.Numerics.Tensors.TensorPrimitives.Add(dws, part.AsSpan(b * wl, wl), dws);
    }

    /// <summary>Copies planes (n, h, w) into (n, h + 2·ph, w + 2·ph) with a zero border of ph.</summary>
    private static void PadPlanes(float* src, int n, int h, int w, int ph, float* dst)
    {
        int hp = h + 2 * ph, wp = w + 2 * ph;
        new Span<float>(dst, n * hp * wp).Clear();
        for (int c = 0; c < n; c++)
        for (int i = 0; i < h; i++)
            new ReadOnlySpan<float>(src + ((long)c * h + i) * w, w).CopyTo(new Span<float>(dst + ((long)c * hp + i + ph) * wp + ph, w));
    }

    /// <summary>
    /// out[j] = init + Σ_m Σ_t in[m][offs[t] + j] · wts[m·wStride + t] for j in [0, width), width ≥ 8,
    /// chained over (m, t) in order. Four 8-wide chunks at a time; the last chunk overlaps the one
    /// before it (it recomputes identical values) so there is no scalar tail.
    /// </summary>
    private static void Row(float* inRow, long planeStride, int planes, int* offs, float* wts, int wStride,
        float init, float* outp, int width)
    {
        int chunks = (width + 7) / 8, k = 0;
        for (; k + 4 <= chunks; k += 4)
        {
            int s0 = Math.Min(8 * k, width - 8), s1 = Math.Min(8 * k + 8, width - 8);
            int s2 = Math.Min(8 * k + 16, width - 8), s3 = Math.Min(8 * k + 24, width - 8);
            Vector256<float> a0 = Vector256.Create(init), a1 = a0, a2 = a0, a3 = a0;
            for (int m = 0; m < planes; m++)
            {
                float* ip = inRow + m * planeStride, wv = wts + m * wStride;
                for (int t = 0; t < 9; t++)
                {
                    var c = Vector256.Create(wv[t]);
                    float* src = ip + offs[t];
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s0), c, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s1), c, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s2), c, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s3), c, a3);
                }
            }
            a0.Store(outp + s0); a1.Store(outp + s1); a2.Store(outp + s2); a3.Store(outp + s3);
        }
        for (; k < chunks; k++)
        {
            int s0 = Math.Min(8 * k, width - 8);
            var a0 = Vector256.Create(init);
            for (int m = 0; m < planes; m++)
            {
                float* ip = inRow + m * planeStride, wv = wts + m * wStride;
                for (int t = 0; t < 9; t++)
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(ip + offs[t] + s0), Vector256.Create(wv[t]), a0);
            }
            a0.Store(outp + s0);
        }
    }

    /// <summary>
    /// <see cref="Row"/> (init 0) for two adjacent output rows at once (the second reads one input row
    /// lower): each broadcast weight feeds 8 FMAs, so the loop is bound by FMAs rather than loads.
    /// Same chain per output as Row, so results do not depend on which of the two is used.
    /// </summary>
    private static void RowsTwo(float* inRow, long planeStride, int wp, int planes, int* offs, float* wts, int wStride,
        float* outp, int width)
    {
        for (int k = 0; k < width; k += 32)
        {
            int s0 = Math.Min(k, width - 8), s1 = Math.Min(k + 8, width - 8);
            int s2 = Math.Min(k + 16, width - 8), s3 = Math.Min(k + 24, width - 8);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (int m = 0; m < planes; m++)
            {
                float* ip = inRow + m * planeStride, wv = wts + m * wStride;
                for (int t = 0; t < 9; t++)
                {
                    var c = Vector256.Create(wv[t]);
                    float* src = ip + offs[t], nxt = src + wp;
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s0), c, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s1), c, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s2), c, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.Load(src + s3), c, a3);
                    b0 = Vector256.FusedMultiplyAdd(Vector256.Load(nxt + s0), c, b0);
                    b1 = Vector256.FusedMultiplyAdd(Vector256.Load(nxt + s1), c, b1);
                    b2 = Vector256.FusedMultiplyAdd(Vector256.Load(nxt + s2), c, b2);
                    b3 = Vector256.FusedMultiplyAdd(Vector256.Load(nxt + s3), c, b3);
                }
            }
            float* o1 = outp + width;
            a0.Store(outp + s0); a1.Store(outp + s1); a2.Store(outp + s2); a3.Store(outp + s3);
            b0.Store(o1 + s0); b1.Store(o1 + s1); b2.Store(o1 + s2); b3.Store(o1 + s3);
        }
    }

    internal sealed class ForwardJob : ParallelJob
    {
        public ConvShape S;
        public float* X, W, Bias, Y;
        public float[][] Scratch = [];
        public override void Run(int b, int slot)
        {
            var s = S;
            int hp = s.Height + 2 * s.Pad, wp = s.Width + 2 * s.Pad, oh = s.OutH, ow = s.OutW, c = s.InChannels;
            float* xp = Ptr(Scratch[slot]);
            PadPlanes(X + (long)b * c * s.Height * s.Width, c, s.Height, s.Width, s.Pad, xp);
            int* offs = stackalloc int[9];
            for (int t = 0; t < 9; t++) offs[t] = t / 3 * wp + t % 3;
            int o = 0;
            long planeStride = (long)hp * wp;
            for (; o + 2 <= s.OutChannels; o += 2)
            {
                float i0 = Bias == null ? 0f : Bias[o], i1 = Bias == null ? 0f : Bias[o + 1];
                float* y0 = Y + ((long)b * s.OutChannels + o) * oh * ow, y1 = y0 + oh * ow;
                for (int i = 0; i < oh; i++)
                    RowPair(xp + i * wp, planeStride, wp, c, W + o * c * 9, W + (o + 1) * c * 9, i0, i1, y0 + i * ow, y1 + i * ow, ow);
            }
            for (; o < s.OutChannels; o++)
            {
                float init = Bias == null ? 0f : Bias[o];
                float* yo = Y + ((long)b * s.OutChannels + o) * oh * ow;
                for (int i = 0; i < oh; i++)
                    Row(xp + i * wp, planeStride, c, offs, W + o * c * 9, 9, init, yo + i * ow, ow);
            }
        }
    }

    /// <summary>
    /// Two output channels of one output row: y0[j] = init0 + Σ_m Σ_(p,q) in[m][p·wp + j + q] · w0[m·9 + p·3 + q]
    /// (and y1 with w1), chained over (m, p, q) in order. Each x load feeds both channels: 8 FMAs per
    /// 4 loads + 2 broadcasts keeps the FMA pipes, not the load ports, the limit. 4-chunk groups with
    /// starts clamped to width − 8 (overlaps recompute identical values).
    /// </summary>
    private static void RowPair(float* inRow, long planeStride, int wp, int planes, float* w0, float* w1,
        float init0, float init1, float* out0, float* out1, int width)
    {
        for (int k = 0; k < width; k += 32)
        {
            int s0 = Math.Min(k, width - 8), s1 = Math.Min(k + 8, width - 8);
            int s2 = Math.Min(k + 16, width - 8), s3 = Math.Min(k + 24, width - 8);
            Vector256<float> a0 = Vector256.Create(init0), a1 = a0, a2 = a0, a3 = a0;
            Vector256<float> b0 = Vector256.Create(init1), b1 = b0, b2 = b0, b3 = b0;
            for (int m = 0; m < planes; m++)
            {
                float* ip = inRow + m * planeStride, u = w0 + m * 9, v = w1 + m * 9;
                for (int p = 0; p < 3; p++, ip += wp, u += 3, v += 3)
                for (int q = 0; q < 3; q++)
                {
                    var cu = Vector256.Create(u[q]);
                    var cv = Vector256.Create(v[q]);
                    var x0 = Vector256.Load(ip + q + s0); var x1 = Vector256.Load(ip + q + s1);
                    var x2 = Vector256.Load(ip + q + s2); var x3 = Vector256.Load(ip + q + s3);
                    a0 = Vector256.FusedMultiplyAdd(x0, cu, a0); b0 = Vector256.FusedMultiplyAdd(x0, cv, b0);
                    a1 = Vector256.FusedMultiplyAdd(x1, cu, a1); b1 = Vector256.FusedMultiplyAdd(x1, cv, b1);
                    a2 = Vector256.FusedMultiplyAdd(x2, cu, a2); b2 = Vector256.FusedMultiplyAdd(x2, cv, b2);
                    a3 = Vector256.FusedMultiplyAdd(x3, cu, a3); b3 = Vector256.FusedMultiplyAdd(x3, cv, b3);
                }
            }
            a0.Store(out0 + s0); a1.Store(out0 + s1); a2.Store(out0 + s2); a3.Store(out0 + s3);
            b0.Store(out1 + s0); b1.Store(out1 + s1); b2.Store(out1 + s2); b3.Store(out1 + s3);
        }
    }

    internal sealed class BackwardJob : ParallelJob
    {
        public ConvShape S;
        public float* X, W, Dy, Dx, Part;
        public float[][] Scratch = [];
        public override void Run(int b, int slot)
        {
            var s = S;
            float* buf = Ptr(Scratch[slot]);
            if (Part != null) WeightGrad(s, b, buf);
            if (Dx != null) InputGrad(s, b, buf);
        }

        // dx[b,c,h,:] = Σ_o Σ_(kh,kw) dyp[o, h + 2 − kh, · + 2 − kw] · w[o,c,kh,kw], dyp = dy[b] padded by 2 − pad.
        private void InputGrad(in ConvShape s, int b, float* dyp)
        {
            int hp = s.Height + 2, wp = s.Width + 2, c = s.InChannels, oc = s.OutChannels;
            PadPlanes(Dy + (long)b * oc * s.OutH * s.OutW, oc, s.OutH, s.OutW, 2 - s.Pad, dyp);
            int* offs = stackalloc int[9];
            for (int t = 0; t < 9; t++) offs[t] = (2 - t / 3) * wp + (2 - t % 3);
            for (int ci = 0; ci < c; ci++)
            {
                float* dxc = Dx + ((long)b * c + ci) * s.Height * s.Width;
                int h = 0;
                for (; h + 2 <= s.Height; h += 2)
                    RowsTwo(dyp + h * wp, (long)hp * wp, wp, oc, offs, W + ci * 9, c * 9, dxc + h * s.Width, s.Width);
                for (; h < s.Height; h++)
                    Row(dyp + h * wp, (long)hp * wp, oc, offs, W + ci * 9, c * 9, 0f, dxc + h * s.Width, s.Width);
            }
        }

        // part[b, o, c, kh, kw] = Σ_(i,j) dy[b,o,i,j] · xp[c, i + kh, j + kw]: lane l chains the columns
        // j ≡ l (mod 8) in (i, j) order (a last partial chunk has its missing lanes zeroed), then the 8
        // lanes are combined as Reductions.Combine does.
        private void WeightGrad(in ConvShape s, int b, float* xp)
        {
            int hp = s.Height + 2 * s.Pad, wp = s.Width + 2 * s.Pad, oh = s.OutH, ow = s.OutW, c = s.InChannels;
            PadPlanes(X + (long)b * c * s.Height * s.Width, c, s.Height, s.Width, s.Pad, xp);
            int full = ow / 8 * 8, rest = ow - full;
            float* part = Part + (long)b * s.WeightLength;
            var shift = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) + Vector256.Create(8 - rest);
            shift = Vector256.ConditionalSelect(Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(rest)), shift, Vector256.Create(8));
            var mask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(rest)).AsSingle();
            for (int o = 0; o < s.OutChannels; o++)
            for (int ci = 0; ci < c; ci++)
            {
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default,
                    a5 = default, a6 = default, a7 = default, a8 = default;
                float* dyo = Dy + ((long)b * s.OutChannels + o) * oh * ow;
                float* xc = xp + (long)ci * hp * wp;
                for (int i = 0; i < oh; i++)
                {
                    float* d = dyo + i * ow;
                    float* r0 = xc + i * wp, r1 = r0 + wp, r2 = r1 + wp;
                    int j = 0;
                    Vector256<float> g;
                    for (; ; j += 8)
                    {
                        if (j < full) g = Vector256.Load(d + j);
                        else if (j == full && rest > 0)
                        {
                            // Last partial chunk: dy's missing lanes are 0 and x's are masked to 0, so
                            // those lanes add exactly +0 (the x loads stay inside the padded scratch).
                            // (the row's last 8 values, shifted down by 8 − rest; out-of-range indices give 0)
                            g = Vector256.Shuffle(Vector256.Load(d + ow - 8), shift);
                        }
                        else break;
                        bool partial = j == full;
                        a0 = Vector256.FusedMultiplyAdd(g, X8(r0 + j, partial, mask), a0);
                        a1 = Vector256.FusedMultiplyAdd(g, X8(r0 + j + 1, partial, mask), a1);
                        a2 = Vector256.FusedMultiplyAdd(g, X8(r0 + j + 2, partial, mask), a2);
                        a3 = Vector256.FusedMultiplyAdd(g, X8(r1 + j, partial, mask), a3);
                        a4 = Vector256.FusedMultiplyAdd(g, X8(r1 + j + 1, partial, mask), a4);
                        a5 = Vector256.FusedMultiplyAdd(g, X8(r1 + j + 2, partial, mask), a5);
                        a6 = Vector256.FusedMultiplyAdd(g, X8(r2 + j, partial, mask), a6);
                        a7 = Vector256.FusedMultiplyAdd(g, X8(r2 + j + 1, partial, mask), a7);
                        a8 = Vector256.FusedMultiplyAdd(g, X8(r2 + j + 2, partial, mask), a8);
                    }
                }
                float* pw = part + (o * c + ci) * 9;
                pw[0] = Reductions.Combine(a0); pw[1] = Reductions.Combine(a1); pw[2] = Reductions.Combine(a2);
                pw[3] = Reductions.Combine(a3); pw[4] = Reductions.Combine(a4); pw[5] = Reductions.Combine(a5);
                pw[6] = Reductions.Combine(a6); pw[7] = Reductions.Combine(a7); pw[8] = Reductions.Combine(a8);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> X8(float* p, bool partial, Vector256<float> mask)
        {
            var v = Vector256.Load(p);
            return partial ? Vector256.ConditionalSelect(mask, v, Vector256<float>.Zero) : v;
        }
    }
}
