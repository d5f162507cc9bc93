// Max and average pooling (NCHW, square window, no padding), one (b, c) plane per parallel item.
// Same visiting order as ConvReference within a plane, so results are bit-identical to it: max takes
// the first index on ties (and keeps a leading NaN), average adds the window in (p, q) order.

using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

public static unsafe class Pool2d
{
    /// <summary>x (B,C,H,W) -> y (B,C,OH,OW), argmax (B,C,OH,OW) = flat input index of each max.
    /// <paramref name="relu"/>: y = ReLU(max) instead (what max-pooling a ReLU's output gives, bit for bit, since
    /// ReLU is monotone: a ReLU followed by this pool is done here in one pass over the 4× smaller output).</summary>
    public static void MaxForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y, Span<int> argmax, bool relu = false)
    {
        Check(s, "x", x.Length, s.InputLength); Check(s, "y", y.Length, s.OutputLength); Check(s, "argmax", argmax.Length, s.OutputLength);
        fixed (float* px = x, py = y) fixed (int* pa = argmax) Run(s, relu ? Op.MaxReluForward : Op.MaxForward, px, py, pa, null);
    }

    /// <summary>dx (B,C,H,W) = scatter of dy (B,C,OH,OW) to the argmax positions (overwritten). With
    /// <paramref name="reluOutput"/> (the y of a <c>relu: true</c> forward), only where that y &gt; 0 — ReLU's gradient.</summary>
    public static void MaxBackward(in PoolShape s, ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx, ReadOnlySpan<float> reluOutput = default)
    {
        Check(s, "dy", dy.Length, s.OutputLength); Check(s, "argmax", argmax.Length, s.OutputLength); Check(s, "dx", dx.Length, s.InputLength);
        if (!reluOutput.IsEmpty) Check(s, "reluOutput", reluOutput.Length, s.OutputLength);
        if (dx.Overlaps(dy)) throw new ArgumentException("MaxPool backward: dx overlaps dy; use a separate buffer.", nameof(dx));
        fixed (float* pdy = dy, pdx = dx, pr = reluOutput) fixed (int* pa = argmax)
            Run(s, Op.MaxBackward, pdx, pdy, pa, reluOutput.IsEmpty ? null : pr);
    }

    public static void AvgForward(in PoolShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        Check(s, "x", x.Length, s.InputLength); Check(s, "y", y.Length, s.OutputLength);
        fixed (float* px = x, py = y) Run(s, Op.AvgForward, px, py, null, null);
    }

    public static void AvgBackward(in PoolShape s, ReadOnlySpan<float> dy, Span<float> dx)
    {
        Check(s, "dy", dy.Length, s.OutputLength); Check(s, "dx", dx.Length, s.InputLength);
        if (dx.Overlaps(dy)) throw new ArgumentException("AvgPool backward: dx overlaps dy; use a separate buffer.", nameof(dx));
        fixed (float* pdy = dy, pdx = dx) Run(s, Op.AvgBackward, pdx, pdy, null, null);
    }

    internal enum Op { MaxForward, MaxReluForward, MaxBackward, AvgForward, AvgBackward }

    [ThreadStatic] private static PoolJob? _job;

    private static void Run(in PoolShape s, Op op, float* x, float* y, int* arg, float* gate)
    {
        if (s.Batch == 0) return;
        var job = _job ??= new PoolJob();
        job.S = s; job.Operation = op; job.X = x; job.Y = y; job.Arg = arg; job.Gate = gate; job.Error = -1;
        job.Vector2x2 = s.Kernel == 2 && s.Stride == 2 && Simd.Path >= SimdPath.Avx2 && Avx2.IsSupported;
        KernelThreads.For(job, s.Batch * s.Channels, Compute.Threads);
        if (job.Error >= 0)
            throw new ArgumentException($"MaxPool backward: argmax[{job.Error}] = {arg[job.Error]} is not an index inside its own pooling window of shape {s} (argmax must come from MaxForward of the same shape).", "argmax");
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
        /// <summary>Backward only: the fused ReLU's output (dy passes where it is &gt; 0), or null.</summary>
        public float* Gate;
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
                case Op.MaxReluForward:
                {
                    bool relu = Operation == Op.MaxReluForward;
                    for (int i = 0; i < oh; i++)
                    {
                        if (Vector2x2) { Max2x2Row(xp, s.Width, i, ow, yp + i * ow, ap + i * ow, baseIdx, relu); continue; }
                        for (int j = 0; j < ow; j++)
                        {
                            float* w0 = xp + i * st * s.Width + j * st;
                            float best = w0[0]; int bi = 0;
                            for (int p = 0; p < k; p++)
                            {
                                float* r = w0 + p * s.Width;
                                for (int q = 0; q < k; q++)
                                    if (r[q] > best) { best = r[q]; bi = p * s.Width + q; }
                            }
                            yp[i * ow + j] = relu ? Relu(best) : best;
                            ap[i * ow + j] = baseIdx + (int)(w0 - xp) + bi;
                        }
                    }
                    break;
                }
                case Op.MaxBackward:
                {
                    float* gp = Gate == null ? null : Gate + (long)bc * oh * ow;
                    if (Vector2x2)
                    {
                        // Windows tile the plane: each dx element is written once (no clear + scatter), except the
                        // last row / column an odd size leaves uncovered, which the clear zeroes.
                        if ((s.Height & 1) != 0 || (s.Width & 1) != 0) new Span<float>(xp, hw).Clear();
                        for (int i = 0; i < oh; i++)
                            if (!Max2x2BackwardRow(xp, s.Width, i, ow, yp + i * ow, ap + i * ow, gp == null ? null : gp + i * ow, baseIdx))
                            {
                                for (int t = i * ow; t < (i + 1) * ow; t++)
                                {
                                    int idx = ap[t] - baseIdx, rel = idx - 2 * (t / ow) * s.Width - 2 * (t % ow);
                                    if (rel != 0 && rel != 1 && rel != s.Width && rel != s.Width + 1) { Error = bc * oh * ow + t; return; }
                                }
                            }
                        break;
                    }
                    new Span<float>(xp, hw).Clear();
                    for (int t = 0; t < oh * ow; t++)
                    {
                        // the index must lie in output t's own window (as the 2x2 path checks), not just in the plane
                        int idx = ap[t] - baseIdx, r = idx / s.Width - t / ow * st, q = idx % s.Width - t % ow * st;
                        if ((uint)idx >= (uint)hw || (uint)r >= (uint)k || (uint)q >= (uint)k) { Error = bc * oh * ow + t; return; }
                        xp[idx] += gp == null || gp[t] > 0f ? yp[t] : 0f;
                    }
                    break;
                }
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
        private static (Vector256<float> even, Vector256<float> odd) Split(Vector256<float> a, Vector256<float> b)
        {
            var e = Avx2.Permute4x64(Avx.Shuffle(a, b, 0x88).AsDouble(), 0xD8).AsSingle();
            var o = Avx2.Permute4x64(Avx.Shuffle(a, b, 0xDD).AsDouble(), 0xD8).AsSingle();
            return (e, o);
        }

        /// <summary>ReLU as TensorPrimitives.Max(x, 0) computes it: NaN stays NaN, −0 becomes +0.</summary>
        private static float Relu(float v) => v > 0f || float.IsNaN(v) ? v : 0f;

        private static Vector256<float> Relu(Vector256<float> v) =>
            Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero) | ~Vector256.Equals(v, v), v, Vector256<float>.Zero);

        /// <summary>Lanes [0, n) set (sign bit) for the masked loads and stores of a row's last partial block.</summary>
        private static Vector256<int> FirstLanes(int n) => Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n));

        /// <summary>Both input rows of output row i, 8 outputs from column j: even and odd columns; the last
        /// partial block (n &lt; 8 outputs) by masked loads, which never touch memory past the row's 2n inputs.</summary>
        private static (Vector256<float> e0, Vector256<float> o0, Vector256<float> e1, Vector256<float> o1) Window(float* xp, int width, int i, int j, int n)
        {
            float* r0 = xp + 2 * i * width + 2 * j, r1 = r0 + width;
            if (n >= 8)
            {
                var (a0, b0) = Split(Avx.LoadVector256(r0), Avx.LoadVector256(r0 + 8));
                var (a1, b1) = Split(Avx.LoadVector256(r1), Avx.LoadVector256(r1 + 8));
                return (a0, b0, a1, b1);
            }
            var lo = FirstLanes(2 * n).AsSingle();
            var hi = FirstLanes(2 * n - 8).AsSingle();
            var (c0, d0) = Split(Avx.MaskLoad(r0, lo), Avx.MaskLoad(r0 + 8, hi));
            var (c1, d1) = Split(Avx.MaskLoad(r1, lo), Avx.MaskLoad(r1 + 8, hi));
            return (c0, d0, c1, d1);
        }

        // One output row, 8 outputs per block, the last partial block masked: the four window elements compared in
        // the reference's (p, q) order, so values and first-index ties match it bit for bit.
        private static void Max2x2Row(float* xp, int width, int i, int ow, float* y, int* arg, int baseIdx, bool relu)
        {
            var lane2 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
            for (int j = 0; j < ow; j += 8)
            {
                int n = Math.Min(8, ow - j);
                var (e0, o0, e1, o1) = Window(xp, width, i, j, n);
                var best = e0; var idx = Vector256<int>.Zero;
                var m = Vector256.GreaterThan(o0, best); best = Vector256.ConditionalSelect(m, o0, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(1), idx);
                m = Vector256.GreaterThan(e1, best); best = Vector256.ConditionalSelect(m, e1, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(width), idx);
                m = Vector256.GreaterThan(o1, best); best = Vector256.ConditionalSelect(m, o1, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(width + 1), idx);
                if (relu) best = Relu(best);
                idx += lane2 + Vector256.Create(baseIdx + 2 * i * width + 2 * j);
                if (n == 8) { best.Store(y + j); idx.Store(arg + j); continue; }
                var mask = FirstLanes(n);
                Avx.MaskStore(y + j, mask.AsSingle(), best);
                Avx2.MaskStore(arg + j, mask, idx);
            }
        }

        // dx rows 2i and 2i+1 from output row i: each window's max position gets dy (0 + dy, as the reference's
        // clear-then-add gives: −0 becomes +0), the other three 0; written once, interleaved back to columns.
        // False when an argmax is not one of its own window's four positions (the caller reports it).
        private static bool Max2x2BackwardRow(float* dx, int width, int i, int ow, float* dy, int* arg, float* gate, int baseIdx)
        {
            var lane2 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
            var zero = Vector256<float>.Zero;
            for (int j = 0; j < ow; j += 8)
            {
                int n = Math.Min(8, ow - j);
                var mask = FirstLanes(n);
                Vector256<float> g; Vector256<int> a;
                if (n == 8) { g = Avx.LoadVector256(dy + j); a = Avx.LoadVector256(arg + j); }
                else { g = Avx.MaskLoad(dy + j, mask.AsSingle()); a = Avx2.MaskLoad(arg + j, mask); }
                if (gate != null)
                {
                    var y = n == 8 ? Avx.LoadVector256(gate + j) : Avx.MaskLoad(gate + j, mask.AsSingle());
                    g = Vector256.ConditionalSelect(Vector256.GreaterThan(y, zero), g, zero);
                }
                g = zero + g;
                var rel = a - lane2 - Vector256.Create(baseIdx + 2 * i * width + 2 * j);
                var m00 = Vector256.Equals(rel, Vector256<int>.Zero);
                var m01 = Vector256.Equals(rel, Vector256.Create(1));
                var m10 = Vector256.Equals(rel, Vector256.Create(width));
                var m11 = Vector256.Equals(rel, Vector256.Create(width + 1));
                if (((m00 | m01 | m10 | m11) & mask) != mask) return false;
                Interleave(dx + 2 * i * width + 2 * j, n,
                    Vector256.ConditionalSelect(m00.AsSingle(), g, zero), Vector256.ConditionalSelect(m01.AsSingle(), g, zero));
                Interleave(dx + (2 * i + 1) * width + 2 * j, n,
                    Vector256.ConditionalSelect(m10.AsSingle(), g, zero), Vector256.ConditionalSelect(m11.AsSingle(), g, zero));
            }
            return true;
        }

        /// <summary>Stores e0 o0 e1 o1 … (2n floats) at p: the inverse of Split.</summary>
        private static void Interleave(float* p, int n, Vector256<float> even, Vector256<float> odd)
        {
            var lo = Avx.UnpackLow(even, odd);    // e0 o0 e1 o1 | e4 o4 e5 o5
            var hi = Avx.UnpackHigh(even, odd);   // e2 o2 e3 o3 | e6 o6 e7 o7
            var first = Avx.Permute2x128(lo, hi, 0x20);
            var second = Avx.Permute2x128(lo, hi, 0x31);
            if (n == 8) { first.Store(p); second.Store(p + 8); return; }
            Avx.MaskStore(p, FirstLanes(2 * n).AsSingle(), first);
            Avx.MaskStore(p + 8, FirstLanes(2 * n - 8).AsSingle(), second);
        }

        private static int Avg2x2Row(float* xp, int width, int i, int ow, float* y)
        {
            int j = 0;
            for (; j + 8 <= ow; j += 8)
            {
                var (e0, o0, e1, o1) = Window(xp, width, i, j, 8);
                (((Vector256<float>.Zero + e0 + o0) + e1 + o1) * Vector256.Create(0.25f)).Store(y + j);
            }
            return j;
        }
    }
}
