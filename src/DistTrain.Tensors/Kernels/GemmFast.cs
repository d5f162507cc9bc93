// Fast SGEMM driver: BLIS-style cache blocking (NC columns of B, KC deep, MC rows of A), packed panels,
// a register-blocked micro-kernel per SIMD path, and threads over disjoint blocks of output tiles.
// Determinism: K blocks run in order and each continues its C elements' FMA chains from the values the
// previous block stored, so the bits equal GemmReference whatever the path, blocking or thread count.
namespace DistTrain.Tensors.Kernels;

public static partial class Gemm
{
    // KC: one B micro-panel (KC x NR) stays in L1 while a block of A (MC x KC) streams from L2.
    internal const int KC = 256, MC = 192, NC = 2048;

    private static unsafe void SgemmFast(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate, int threads)
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++) c.Slice(i * ldc, n).Clear();
            return;
        }
        var path = Simd.Path; // read once: a concurrent Simd.Force must not mix paths within a call
        fixed (float* pa = a, pb = b, pc = c)
        {
            var job = new GemmJob
            {
                A = pa, B = pb, C = pc, Lda = lda, Ldb = ldb, Ldc = ldc, M = m, N = n, K = k,
                TransA = transA, TransB = transB, Accumulate = accumulate,
                Kernel = GemmKernels.Select(path), Avx = path >= SimdPath.Avx2,
            };
            int parts = job.PlanParts(threads);
            if (parts <= 1) job.RunPart(0);
            else GemmPool.Run(parts, &RunPart, &job);
        }
    }

    private static unsafe void RunPart(int part, void* job) => ((GemmJob*)job)->RunPart(part);
}

/// <summary>One SGEMM call, split into parts that own disjoint blocks of C rows or columns.</summary>
internal unsafe struct GemmJob
{
    public float* A, B, C;
    public int Lda, Ldb, Ldc, M, N, K;
    public bool TransA, TransB, Accumulate;
    public MicroKernel Kernel;
    public bool Avx; // the packing may use 256-bit shuffles (Simd.Path is AVX2 or wider)
    private int _parts;
    private bool _splitRows;

    // Below this much work a second thread costs more in wake-up than it saves.
    private const long MinFlopsPerThread = 1L << 20;

    public int PlanParts(int threads)
    {
        int tilesM = (M + Kernel.MR - 1) / Kernel.MR, tilesN = (N + Kernel.NR - 1) / Kernel.NR;
        long flops = 2L * M * N * K;
        // Never more parts than worth waking a thread for, nor absurdly many threads (results never depend on it).
        int parts = (int)Math.Min(Math.Min(threads, 4 * Environment.ProcessorCount), Math.Max(1, flops / MinFlopsPerThread));
        _splitRows = tilesM >= tilesN;
        parts = Math.Min(parts, _splitRows ? tilesM : tilesN);
        return _parts = Math.Max(parts, 1);
    }

    public void RunPart(int part)
    {
        int i0 = 0, i1 = M, j0 = 0, j1 = N;
        if (_parts > 1)
        {
            int unit = _splitRows ? Kernel.MR : Kernel.NR, total = _splitRows ? M : N;
            int tiles = (total + unit - 1) / unit;
            int t0 = (int)((long)tiles * part / _parts), t1 = (int)((long)tiles * (part + 1) / _parts);
            int lo = t0 * unit, hi = Math.Min(total, t1 * unit);
            if (_splitRows) { i0 = lo; i1 = hi; } else { j0 = lo; j1 = hi; }
            if (lo >= hi) return;
        }
        Run(i0, i1, j0, j1);
    }

    private void Run(int i0, int i1, int j0, int j1)
    {
        int mr = Kernel.MR, nr = Kernel.NR;
        var ws = GemmWorkspace.ForThread(mr, nr);
        float* tile = stackalloc float[mr * nr];
        // Packing pays for itself by being reused across many tiles; when the other dimension is small
        // the kernel reads an operand in place instead (B not transposed: rows of NR; A transposed: MR).
        bool directB = !TransB && (i1 - i0) <= GemmTuning.DirectBMaxRows;
        bool directA = TransA && (j1 - j0) <= GemmTuning.DirectAMaxCols;
        for (int jc = j0; jc < j1; jc += Gemm.NC)
        {
            int nc = Math.Min(Gemm.NC, j1 - jc);
            int fullB = directB ? nc / nr * nr : 0;
            for (int pc = 0; pc < K; pc += Gemm.KC)
            {
                int kc = Math.Min(Gemm.KC, K - pc);
                bool load = Accumulate || pc > 0;
                // Packed panel jr sits at PackedB + jr * kc; in-place ones are skipped.
                if (fullB < nc) GemmPack.PackB(TransB, B, Ldb, pc, kc, jc + fullB, nc - fullB, ws.PackedB + (long)fullB * kc, nr, Avx);
                for (int ic = i0; ic < i1; ic += Gemm.MC)
                {
                    int mc = Math.Min(Gemm.MC, i1 - ic);
                    int fullA = directA ? mc / mr * mr : 0;
                    if (fullA < mc) GemmPack.PackA(TransA, A, Lda, ic + fullA, mc - fullA, pc, kc, ws.PackedA + (long)fullA * kc, mr);
                    for (int jr = 0; jr < nc; jr += nr)
                    {
                        int cols = Math.Min(nr, nc - jr);
                        bool inPlaceB = jr < fullB;
                        float* bp = inPlaceB ? B + (long)pc * Ldb + jc + jr : ws.PackedB + (long)jr * kc;
                        nint bStep = inPlaceB ? Ldb : nr;
                        for (int ir = 0; ir < mc; ir += mr)
                        {
                            int rows = Math.Min(mr, mc - ir);
                            bool inPlaceA = ir < fullA;
                            float* ap = inPlaceA ? A + (long)pc * Lda + ic + ir : ws.PackedA + (long)ir * kc;
                            nint aStep = inPlaceA ? Lda : mr;
                            float* cp = C + (long)(ic + ir) * Ldc + jc + jr;
                            if (rows == mr && cols == nr) Kernel.Fn(kc, ap, aStep, bp, bStep, cp, Ldc, load);
                            else EdgeTile(kc, ap, aStep, bp, bStep, cp, rows, cols, load, tile);
                        }
                    }
                }
            }
        }
    }

    // A partial tile runs the full kernel on a scratch tile; padded rows/columns are never copied back.
    private void EdgeTile(int kc, float* ap, nint aStep, float* bp, nint bStep, float* cp, int rows, int cols, bool load, float* tile)
    {
        int nr = Kernel.NR;
        if (load)
            for (int r = 0; r < rows; r++)
                new ReadOnlySpan<float>(cp + (long)r * Ldc, cols).CopyTo(new Span<float>(tile + r * nr, cols));
        Kernel.Fn(kc, ap, aStep, bp, bStep, tile, nr, load);
        for (int r = 0; r < rows; r++)
            new ReadOnlySpan<float>(tile + r * nr, cols).CopyTo(new Span<float>(cp + (long)r * Ldc, cols));
    }
}

/// <summary>Size thresholds of the driver.</summary>
internal static class GemmTuning
{
    // Reading op(B) in place saves a copy of B but gives up L1-resident, TLB-friendly panels; it wins
    // while B is reused by few row tiles (the batch-64 layers of training).
    public const int DirectBMaxRows = 128;
    // Likewise A transposed (dW = Xᵀ·dY) when few column tiles reuse it.
    public const int DirectAMaxCols = 256;
}
