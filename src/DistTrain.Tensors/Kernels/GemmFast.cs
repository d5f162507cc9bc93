// Fast SGEMM driver: BLIS-style cache blocking (NC columns of B, KC deep, MC rows of A), packed panels,
// a register-blocked micro-kernel per SIMD path, and a team of threads that packs B together and claims row tiles.
// Determinism: K blocks run in order and each continues its C elements' FMA chains from the values the
// previous block stored, so the bits equal GemmReference whatever the path, blocking or thread count.
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors.Kernels;

public static partial class Gemm
{
    // One B micro-panel (KC x NR) stays in L1 while a block of A (MC x KC) streams from L2. K is cut
    // into blocks of equal depth up to KCMax (784 = 264 + 264 + 256, not 256 x 3 + 16): a shallow last
    // block would reload and store every C tile for a few k steps. The blocking never changes the bits.
    internal const int KCMax = 320, MC = 192, NC = 2048;

    /// <summary>Depth of the K blocks for a reduction of length k: as few blocks as KCMax allows, of equal
    /// depth rounded up to 8 (the packing transposes 8 k steps at a time); only the last may be shallower.</summary>
    internal static int BlockDepth(int k)
    {
        int blocks = (k + KCMax - 1) / KCMax;
        return Math.Min(KCMax, ((k + blocks - 1) / blocks + 7) / 8 * 8);
    }

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
            var ws = GemmWorkspace.ForThread(job.Kernel.MR, job.Kernel.NR);
            // A busy pool (another caller's GEMM) means this call runs alone: same bits, one thread.
            if (parts > 1 && GemmPool.TryEnter())
            {
                try
                {
                    job.Prepare(parts, ws);
                    GemmPool.Run(parts, &RunMember, &job);
                }
                finally { GemmPool.Exit(); }
            }
            else
            {
                job.Prepare(1, ws);
                job.RunMember(0);
            }
        }
    }

    private static unsafe void RunMember(int member, void* job) => ((GemmJob*)job)->RunMember(member);
}

/// <summary>
/// One SGEMM call, run by a team of threads. Per (NC column block, KC deep block): members claim the B
/// panel's NR micro-panels from an atomic counter and pack them into a buffer shared by all; once every
/// micro-panel is packed, members claim chunks of MR row tiles (large chunks first, small at the end, so
/// members finish a block together even when one ran slower) and pack their own rows of A.
/// The B panel is double-buffered across K blocks: block b+1 is packed while block b is still computed; it
/// is computed only once all of block b is (each C element's K blocks stay in order: the determinism
/// contract), and packing block b+2 into block b's buffer waits until block b is computed.
/// With 256 rows or more shared out by rows, each member instead packs its own copy of every B panel (no
/// shared buffer, no packing handover): only the K-block order is waited for. A team that shares out column panels
/// of a short A (at most MC rows) packs nothing together either: each member packs the B panels it claimed, and all
/// of A once per K block, into its own buffers.
/// Nothing waits for a member as such, only for work that someone claimed: a member that starts late
/// (its core busy elsewhere) finds the work done and leaves, and one that never started is called off
/// (GemmPool), so a shared machine's late thread costs the call its help, not a wait.
/// </summary>
internal unsafe struct GemmJob
{
    public float* A, B, C;
    public int Lda, Ldb, Ldc, M, N, K;
    public bool TransA, TransB, Accumulate;
    public MicroKernel Kernel;
    public bool Avx; // the packing may use 256-bit shuffles (Simd.Path is AVX2 or wider)
    private bool _directA, _directB, _claimColumns;
    private bool _privateB;      // team members pack their own copy of each B panel (Prepare)
    private bool _privateColumns; // team members pack the B panels they claim and their own copy of A (Prepare)
    private int _team;           // threads running this call (1 when the pool was busy)
    private float* _packedB0, _packedB1;
    private int _claimed;        // units (row tiles or column panels) handed out so far, over all blocks of the call
    private int _computed;       // units computed so far (blocks complete in order: see RunMember)
    private int _packClaimed;    // B micro-panels handed out for packing so far, over all blocks
    private int _packed;         // B micro-panels packed so far

    // Below this much work a second thread costs more in wake-up than it saves.
    private const long MinFlopsPerThread = 1L << 20;

    /// <summary>How many threads the call is worth (never more than asked for); fixes the plan that does not depend on it.</summary>
    public int PlanParts(int threads)
    {
        int tilesM = (M + Kernel.MR - 1) / Kernel.MR, tilesN = (N + Kernel.NR - 1) / Kernel.NR;
        long flops = 2L * M * N * K;
        // Packing pays for itself by being reused across many tiles; when the other dimension is small
        // the kernel reads an operand in place instead (B not transposed: rows of NR; A transposed: MR).
        // Decided on the whole call, so a thread's share never tips it (half of 256 rows would read B in place).
        _directB = !TransB && (M <= GemmTuning.DirectBAnyStrideMaxRows
            || M <= GemmTuning.DirectBMaxRows && GemmTuning.StrideKeepsPanelInL1(Ldb, Gemm.BlockDepth(K)));
        _directA = TransA && N <= GemmTuning.DirectAMaxCols;
        // Never more threads than worth waking, nor absurdly many (results never depend on it).
        int parts = (int)Math.Min(Math.Min(threads, 4 * Environment.ProcessorCount), Math.Max(1, flops / MinFlopsPerThread));
        // Rows are the natural unit (each member packs only its own A rows); a few rows and many columns
        // are shared out by column panels instead, and so is a short A (one MC block) beside a wider B that must be
        // packed: each member then packs A, the smaller operand, whole and only its own columns of B (the batch-64
        // dX = dY·Wᵀ of a dense layer: 64 rows, 784 columns, B transposed).
        _claimColumns = tilesM < 4 * parts && tilesN > tilesM
            || parts > 1 && M <= Gemm.MC && N > M && tilesN >= 4 * parts && !_directB;
        return Math.Max(1, Math.Min(parts, _claimColumns ? tilesN : tilesM));
    }

    /// <summary>Shared state for a team of <paramref name="team"/> threads, set by the caller before any member starts.</summary>
    public void Prepare(int team, GemmWorkspace callerWs)
    {
        _team = team;
        _claimed = 0; _computed = 0; _packClaimed = 0; _packed = 0;
        _packedB0 = callerWs.PackedB;
        // Rows shared out and enough of them that a second packing of B costs little next to the member's tiles (a
        // copy of K x N against M x N x K / team FMAs: ~5 % at 256 rows): each member packs all of B itself. Reading
        // the half another core packed costs more than that at 256 (cross-core lines) and the pack-then-compute
        // handover goes; gemm-mix: 256^3 nn/tn +2-5 % per call at 2 threads, 512^3 and 1024^3 equal.
        _privateB = team > 1 && !_claimColumns && M >= GemmTuning.PrivateBMinRows;
        // Columns of a short A: claims are disjoint panels of B, so a member's own panels need nobody else's packing,
        // and A is packed once per K block rather than for every claim (a claim may be 2 panels against 64 rows of A).
        _privateColumns = team > 1 && _claimColumns && M <= Gemm.MC;
        _packedB1 = team > 1 && !_privateB && !_privateColumns ? callerWs.SecondPackedB() : _packedB0; // alone, nobody reads a block while the next is packed
    }

    /// <summary>One member's part of the call; <paramref name="member"/> in [0, team).</summary>
    public void RunMember(int member)
    {
        int mr = Kernel.MR, nr = Kernel.NR;
        var ws = GemmWorkspace.ForThread(mr, nr);
        float* tile = stackalloc float[mr * nr];
        int block = 0, start = 0, packStart = 0; // the claim counters' values when this block's claims begin
        int computedBefore = 0, computedTwoBefore = 0; // _computed once blocks b-1 and b-2 are complete
        int depth = Gemm.BlockDepth(K);
        for (int jc = 0; jc < N; jc += Gemm.NC)
        {
            int nc = Math.Min(Gemm.NC, N - jc);
            int fullB = _directB ? nc / nr * nr : 0;
            for (int pc = 0; pc < K; pc += depth, block++)
            {
                int kc = Math.Min(depth, K - pc);
                // Packed panel jr sits at packedB + jr * kc; in-place ones are skipped.
                int panels = fullB < nc ? (nc - fullB + nr - 1) / nr : 0;
                int units = _claimColumns ? (nc + nr - 1) / nr : (M + mr - 1) / mr;
                float* packedB;
                if (_privateColumns) packedB = null; // packed claim by claim below
                else if (_privateB)
                {
                    // Each member packs the whole panel into its own buffer (never read by another core, nothing to wait
                    // for), unless the block's tiles are all claimed already (a late member).
                    packedB = ws.PackedB;
                    if (panels > 0 && Volatile.Read(ref _claimed) < start + units)
                        GemmPack.PackB(TransB, B, Ldb, pc, kc, jc + fullB, nc - fullB, packedB + (long)fullB * kc, nr, Avx);
                }
                else if (panels > 0)
                {
                    packedB = (block & 1) == 0 ? _packedB0 : _packedB1;
                    // This buffer last held block b-2's panel: nobody may still be computing on it.
                    if (_team > 1) WaitFor(ref _computed, computedTwoBefore);
                    while (ClaimPanels(packStart, panels, out int p0, out int p1))
                    {
                        int c0 = fullB + p0 * nr, c1 = Math.Min(nc, fullB + p1 * nr);
                        GemmPack.PackB(TransB, B, Ldb, pc, kc, jc + c0, c1 - c0, packedB + (long)c0 * kc, nr, Avx);
                        if (_team > 1) Interlocked.Add(ref _packed, p1 - p0);
                    }
                    if (_team > 1) WaitFor(ref _packed, packStart + panels);
                }
                else packedB = null; // every panel of this block is read in place
                // Block b continues the FMA chains block b-1 stored: all of it must be computed first.
                if (_team > 1) WaitFor(ref _computed, computedBefore);
                bool packA = true; // A of this block is not in this member's buffer yet
                while (Claim(start, units, out int u0, out int u1))
                {
                    if (_privateColumns)
                    {
                        // This claim's panels that are not read in place go to the front of the member's own buffer;
                        // Compute finds panel jr at packedB + jr * kc.
                        int c0 = Math.Max(fullB, u0 * nr), c1 = Math.Min(nc, u1 * nr);
                        if (c0 < c1) GemmPack.PackB(TransB, B, Ldb, pc, kc, jc + c0, c1 - c0, ws.PackedB, nr, Avx);
                        Compute(0, M, jc, nc, Math.Min(nc, u0 * nr), c1, pc, kc, fullB, ws.PackedB - (long)c0 * kc, ws, tile, packA);
                        packA = false; // M <= MC: one row block, packed whole by the first claim
                    }
                    else if (_claimColumns) Compute(0, M, jc, nc, Math.Min(nc, u0 * nr), Math.Min(nc, u1 * nr), pc, kc, fullB, packedB, ws, tile);
                    else Compute(u0 * mr, Math.Min(M, u1 * mr), jc, nc, 0, nc, pc, kc, fullB, packedB, ws, tile);
                    if (_team > 1) Interlocked.Add(ref _computed, u1 - u0);
                }
                computedTwoBefore = computedBefore;
                computedBefore = start + units;
                start += units;
                if (!_privateB) packStart += panels;
            }
        }
    }

    // Hands out [u0, u1) of this block's units (row tiles, or column panels): an MC block's worth alone; with a
    // team, 1/(2·team) of what is left, at least two, so the last claims are small and the team finishes together.
    private bool Claim(int start, int units, out int u0, out int u1)
    {
        int maxChunk = _claimColumns ? Math.Max(1, Gemm.NC / Kernel.NR) : Gemm.MC / Kernel.MR;
        int cur = Volatile.Read(ref _claimed);
        while (true)
        {
            int rest = start + units - cur;
            if (rest <= 0) { u0 = u1 = 0; return false; }
            int chunk = _team == 1 ? Math.Min(rest, maxChunk) : Math.Min(rest, Math.Clamp(rest / (2 * _team), 2, maxChunk));
            int seen = Interlocked.CompareExchange(ref _claimed, cur + chunk, cur);
            if (seen == cur) { u0 = cur - start; u1 = u0 + chunk; return true; }
            cur = seen;
        }
    }

    // Hands out B micro-panels [p0, p1) of this block to pack: a quarter of what is left per claim (at least one), so a
    // member that is alone packs in few claims and two members share the panel evenly.
    private bool ClaimPanels(int start, int panels, out int p0, out int p1)
    {
        int cur = Volatile.Read(ref _packClaimed);
        while (true)
        {
            int rest = start + panels - cur;
            if (rest <= 0) { p0 = p1 = 0; return false; }
            int chunk = _team == 1 ? rest : Math.Max(1, rest / 4);
            int seen = Interlocked.CompareExchange(ref _packClaimed, cur + chunk, cur);
            if (seen == cur) { p0 = cur - start; p1 = p0 + chunk; return true; }
            cur = seen;
        }
    }

    // Until a counter of finished work (packed panels, computed units) reaches target: only claimed work is waited
    // for, and whoever claimed it is running it. Spins (yielding, never sleeping): a block lasts microseconds.
    private static void WaitFor(ref int counter, int target)
    {
        if (Volatile.Read(ref counter) >= target) return;
        var spin = new SpinWait();
        while (Volatile.Read(ref counter) < target) spin.SpinOnce(sleep1Threshold: -1);
    }

    /// <summary>C[i0..i1, jc+j0..jc+j1) over K block [pc, pc+kc): packs op(A) rows (unless read in place, or already
    /// packed when <paramref name="packA"/> is false), then the tiles.</summary>
    private void Compute(int i0, int i1, int jc, int nc, int j0, int j1, int pc, int kc, int fullB, float* packedB, GemmWorkspace ws, float* tile,
        bool packA = true)
    {
        int mr = Kernel.MR, nr = Kernel.NR;
        bool load = Accumulate || pc > 0;
        for (int ic = i0; ic < i1; ic += Gemm.MC)
        {
            int mc = Math.Min(Gemm.MC, i1 - ic);
            int fullA = _directA ? mc / mr * mr : 0;
            if (packA && fullA < mc) GemmPack.PackA(TransA, A, Lda, M, ic + fullA, mc - fullA, pc, kc, ws.PackedA + (long)fullA * kc, mr, Avx);
            for (int jr = j0; jr < j1; jr += nr)
            {
                int cols = Math.Min(nr, nc - jr);
                bool inPlaceB = jr < fullB;
                float* bp = inPlaceB ? B + (long)pc * Ldb + jc + jr : packedB + (long)jr * kc;
                nint bStep = inPlaceB ? Ldb : nr;
                for (int ir = 0; ir < mc; ir += mr)
                {
                    int rows = Math.Min(mr, mc - ir);
                    bool inPlaceA = ir < fullA;
                    float* ap = inPlaceA ? A + (long)pc * Lda + ic + ir : ws.PackedA + (long)ir * kc;
                    nint aStep = inPlaceA ? Lda : mr;
                    float* cp = C + (long)(ic + ir) * Ldc + jc + jr;
                    if (NextTile(ir, jr, mr, nr, mc, nc, j1, out int nextIr, out int nextJr, out int nextRows, out int nextCols))
                        PrefetchTile(C + (long)(ic + nextIr) * Ldc + jc + nextJr, nextRows, nextCols);
                    if (rows == mr && cols == nr) Kernel.Fn(kc, ap, aStep, bp, bStep, cp, Ldc, load);
                    else EdgeTile(kc, ap, aStep, bp, bStep, cp, rows, cols, load, tile);
                }
            }
        }
    }

    /// <summary>The tile Compute's walk of one row block (mc rows; panels from jr up to j1, of a block nc wide) reaches
    /// after tile (ir, jr): down the rows, then the top of the next panel. False after the block's last tile: the
    /// next block's rows are packed first, and past j1 the columns belong to another member.</summary>
    internal static bool NextTile(int ir, int jr, int mr, int nr, int mc, int nc, int j1,
        out int nextIr, out int nextJr, out int rows, out int cols)
    {
        (nextIr, nextJr) = ir + mr < mc ? (ir + mr, jr) : (0, jr + nr);
        rows = Math.Min(mr, mc - nextIr);
        cols = Math.Min(nr, nc - nextJr);
        return nextJr < j1;
    }

    // Brings the C tile at c (rows x cols) towards L1 while the kernel computes the current one: a chain that starts
    // from C would stall on a miss, and a tile written from zero would miss at its stores (C larger than L2). Only
    // this thread's next tile: a prefetch of rows another member claimed pulls lines it is writing away from it
    // (the kernels used to prefetch the next 6 rows, across a claim edge every few tiles at 2 threads).
    private void PrefetchTile(float* c, int rows, int cols)
    {
        if (!Sse.IsSupported) return;
        for (int r = 0; r < rows; r++, c += Ldc)
        {
            for (int j = 0; j < cols; j += 16) Sse.Prefetch0(c + j);
            Sse.Prefetch0(c + cols - 1); // the row's last line when it starts inside one
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
    // Up to this many rows (11 tiles) reading B from L2 again per tile still beats packing it, whatever
    // the stride; above it, in place only when the panel stays in L1 (dW of a 256-wide layer: 56 -> 71 GFLOP/s).
    public const int DirectBAnyStrideMaxRows = 64;

    /// <summary>Whether kc rows of B read in place at stride ldb floats can all stay in L1 (32 KB, 8 ways,
    /// 64 sets of 64-byte lines) beside the A panel. A stride of a multiple of 16 floats maps every row to
    /// the same few sets (1 KB: 4 sets, 32 lines), and each row tile then reads its B panel again from L2.</summary>
    public static bool StrideKeepsPanelInL1(int ldb, int kc)
    {
        if (ldb % 16 != 0) return true; // rows start at varying offsets in their lines: spread over the sets
        int sets = 64 >> Math.Min(System.Numerics.BitOperations.TrailingZeroCount(ldb / 16), 6); // 64 / gcd(lines, 64)
        return 8 * sets >= kc + 64;
    }
    // Likewise A transposed (dW = Xᵀ·dY) when few column tiles reuse it.
    public const int DirectAMaxCols = 256;
    // From this many rows up, each member of a row-sharing team packs its own copy of B (GemmJob.Prepare).
    public const int PrivateBMinRows = 256;
}
