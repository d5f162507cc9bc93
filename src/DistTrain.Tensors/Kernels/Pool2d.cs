// Max and average pooling (NCHW, square window, no padding), one (b, c) plane per parallel item.
// Same visiting order as ConvReference within a plane, so results are bit-identical to it: max takes
// the first index on ties (and keeps a leading NaN), average adds the window in (p, q) order.

using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

public static unsafe class Pool2d
{
    /// <summary>x (B,C,H,W) -> y (B,C,OH,OW), argmax (B,C,OH,OW) = flat input index of each max.</summary>
    public static void MaxForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y, Span<int> argmax)
    {
        Check(s, "x", x.Length, s.InputLength); Check(s, "y", y.Length, s.OutputLength); Check(s, "argmax", argmax.Length, s.OutputLength);
        fixed (float* px = x, py = y) fixed (int* pa = argmax) Run(s, Op.MaxForward, px, py, pa);
    }

    /// <summary>dx (B,C,H,W) = scatter of dy (B,C,OH,OW) to the argmax positions (overwritten).</summary>
    public static void MaxBackward(in PoolShape s, ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx)
    {
        Check(s, "dy", dy.Length, s.OutputLength); Check(s, "argmax", argmax.Length, s.OutputLength); Check(s, "dx", dx.Length, s.InputLength);
        if (dx.Overlaps(dy)) throw new ArgumentException("MaxPool backward: dx overlaps dy; use a separate buffer.", nameof(dx));
        fixed (float* pdy = dy, pdx = dx) fixed (int* pa = argmax) Run(s, Op.MaxBackward, pdx, pdy, pa);
    }

    public static void AvgForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        Check(s, "x", x.Length, s.InputLength); Check(s, "y", y.Length, s.OutputLength);
        fixed (float* px = x, py = y) Run(s, Op.AvgForward, px, py, null);
    }

    public static void AvgBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx)
    {
        Check(s, "dy", dy.Length, s.OutputLength); Check(s, "dx", dx.Length, s.InputLength);
        if (dx.Overlaps(dy)) throw new ArgumentException("AvgPool backward: dx overlaps dy; use a separate buffer.", nameof(dx));
        fixed (float* pdy = dy, pdx = dx) Run(s, Op.AvgBackward, pdx, pdy, null);
    }

    internal enum Op { MaxForward, MaxBackward, AvgForward, AvgBackward }

    [ThreadStatic] private static PoolJob? _job;

    private static void Run(in PoolShape s, Op op, float* x, float* y, int* arg)
    {
        if (s.Batch == 0) return;
        var job = _job ??= new PoolJob();
        job.S = s; job.Operation = op; job.X = x; job.Y = y; job.Arg = arg; job.Error = -1;
        job.Vector2x2 = s.Kernel == 2 && s.Stride == 2 && Simd.Path >= SimdPath.Avx2 && Avx2.IsSupported;
        KernelThreads.For(job, s.Batch * s.Channels, Compute.Threads);
        if (job.Error >= 0)
            throw new ArgumentException($"MaxPool backward: argmax[{job.Error}] = {arg[job.Error]} is not an index inside its own (b, c) input plane of shape {s}.", "argmax");
    }

    private static void Check(in PoolShape s, string name, int have, int need)
    {
        s.Validate();
        if (have != need)
        {
            string shape = name is "x" or "dx" ? $"(B,C,H,W)=({s.Batch},{s.Channels},{s.Height},{s.Width})"
                : $"(B,C,OH,OW)=({s.Batch},{s.Channels},{s.OutH},{s.OutW})";
            throw new ArgumentException($"Pool2d: {name} has {have} elements but shape {shape} needs {need}.", name);
        }
    }

    /// <summary>x is the input plane side (dx for backward), y the output side (dy for backward).</summary>
    private sealed class PoolJob : ParallelJob
    {
        public PoolShape S;
        public Op Operation;
        public float* X, Y;
        public int* Arg;
        public bool Vector2x2;
        public volatile int Error;

        public override void Run(int bc, int slot)
        {
            var s = S;
            int oh = s.OutH, ow = s.OutW, k = s.Kernel, st = s.Stride, hw = s.Height * s.Width;
            float* xp = X + (long)bc * hw, yp = Y + (long)bc * oh * ow;
            int* ap = Arg + (long)bc * oh * ow;
            int baseIdx = bc * hw;
            switch (Operation)
            {
                case Op.MaxForward:
                    for (int i = 0; i < oh; i++)
                    for (int j = Vector2x2 ? Max2x2Row(xp, s.Width, i, ow, yp + i * ow, ap + i * ow, baseIdx) : 0; j < ow; j++)
                    {
                        float* w0 = xp + i * st * s.Width + j * st;
                        float best = w0[0]; int bi = 0;
                        for (int p = 0; p < k; p++)
                        {
                            float* r = w0 + p * s.Width;
                            for (int q = 0; q < k; q++)
                                if (r[q] > best) { best = r[q]; bi = p * s.Width + q; }
                        }
                        yp[i * ow + j] = best;
                        ap[i * ow + j] = baseIdx + (int)(w0 - xp) + bi;
                    }
                    break;
                case Op.MaxBackward:
                    new Span<float>(xp, hw).Clear();
                    for (int t = 0; t < oh * ow; t++)
                    {
                        int idx = ap[t] - baseIdx;
                        if ((uint)idx >= (uint)hw) { Error = bc * oh * ow + t; return; }
                        xp[idx] += yp[t];
                    }
                    break;
                case Op.AvgForward:
                {
                    float inv = 1f / (k * k);
                    for (int i = 0; i < oh; i++)
                    for (int j = Vector2x2 ? Avg2x2Row(xp, s.Width, i, ow, yp + i * ow) : 0; j < ow; j++)
                    {
                        float* w0 = xp + i * st * s.Width + j * st;
                        float acc = 0;
                        for (int p = 0; p < k; p++)
                        for (int q = 0; q < k; q++)
                            acc += w0[p * s.Width + q];
                        yp[i * ow + j] = acc * inv;
                    }
                    break;
                }
                case Op.AvgBackward:
                {
                    float inv = 1f / (k * k);
                    new Span<float>(xp, hw).Clear();
                    for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        float g = yp[i * ow + j] * inv;
                        float* w0 = xp + i * st * s.Width + j * st;
                        if (k == st)   // windows do not overlap: a row of k adds of the same g, vectorizable
                        {
                            for (int p = 0; p < k; p++) new Span<float>(w0 + p * s.Width, k).Fill(0f + g);   // 0 + g as the reference adds (turns -0 into +0)
                            continue;
                        }
                        for (int p = 0; p < k; p++)
                        for (int q = 0; q < k; q++)
                            w0[p * s.Width + q] += g;
                    }
                    break;
                }
            }
        }

        // 2x2, stride 2, 8 outputs at a time (AVX2): even/odd input columns split with shuffles, then the
        // four window elements compared / added in the reference's (p, q) order, so the bits match it.
        // Return the first output column left for the scalar loop.
        private static (Vector256<float> even, Vector256<float> odd) Split(float* p)
        {
            Vector256<float> a = Avx.LoadVector256(p), b = Avx.LoadVector256(p + 8);
            var e = Avx2.Permute4x64(Avx.Shuffle(a, b, 0x88).AsDouble(), 0xD8).AsSingle();
            var o = Avx2.Permute4x64(Avx.Shuffle(a, b, 0xDD).AsDouble(), 0xD8).AsSingle();
            return (e, o);
        }

        private static int Max2x2Row(float* xp, int width, int i, int ow, float* y, int* arg, int baseIdx)
        {
            int j = 0;
            var lane2 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
            for (; j + 8 <= ow; j += 8)
            {
                float* r0 = xp + 2 * i * width + 2 * j, r1 = r0 + width;
                var (e0, o0) = Split(r0);
                var (e1, o1) = Split(r1);
                var best = e0; var idx = Vector256<int>.Zero;
                var m = Vector256.GreaterThan(o0, best); best = Vector256.ConditionalSelect(m, o0, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(1), idx);
                m = Vector256.GreaterThan(e1, best); best = Vector256.ConditionalSelect(m, e1, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(width), idx);
                m = Vector256.GreaterThan(o1, best); best = Vector256.ConditionalSelect(m, o1, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(width + 1), idx);
                best.Store(y + j);
                (idx + lane2 + Vector256.Create(baseIdx + 2 * i * width + 2 * j)).Store(arg + j);
            }
            return j;
        }

        private static int Avg2x2Row(float* xp, int width, int i, int ow, float* y)
        {
            int j = 0;
            for (; j + 8 <= ow; j += 8)
            {
                float* r0 = xp + 2 * i * width + 2 * j, r1 = r0 + width;
                var (e0, o0) = Split(r0);
                var (e1, o1) = Split(r1);
                (((Vector256<float>.Zero + e0 + o0) + e1 + o1) * Vector256.Create(0.25f)).Store(y + j);
            }
            return j;
        }
    }
}
