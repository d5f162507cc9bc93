// Winograd F(2×2, 3×3) convolution (Lavin & Gray 2015) for 3×3, stride-1, pad-1 layers with enough
// channels: 16 multiplies per 2×2 output tile and channel pair instead of 36. Tiles (flat over samples)
// go in chunks; per chunk the input tiles are transformed (WinogradTransforms), multiplied by the
// transformed filters (16 products, one per ξ, channels as K) and transformed back. The input gradient
// is the same pad-1 convolution of dy with the filters turned by 180° and the channels swapped; the
// weight gradient sums (A dy Aᵀ) ⊙ (Bᵀ x B) over all tiles with the tiles as K (F(3×3, 2×2)), then
// applies Gᵀ · G once.
// Determinism: forward and input-gradient outputs each come from their own tile, one FMA chain over the
// channels per ξ, whatever the chunk or thread; weight-gradient sums run over a fixed number of sample
// groups (never the thread count), each one chain over its tiles in order, groups added in order. All
// products call the SGEMM micro-kernel (GemmKernels.Select) directly, on operands laid out for it
// (the weight gradient's by WinogradPanels), because 16 small GEMMs per chunk through Gemm.Sgemm paid
// more in packing, edge tiles and call set-up than in multiplies; its chains give the same bits on every SIMD path.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class ConvWinograd
{
    /// <summary>Fewer channels than this leave the products too shallow (K) or narrow to pay for the transforms:
    /// measured (batch 64, in-process against im2col) 8→8 and 8→16 at 28×28 ran 0.8–0.9× as fast, 16→16 1.3×.</summary>
    public const int MinChannels = 16;
    /// <summary>Tiles per chunk: its transformed inputs (16·C·tiles floats) stay in L2 while each block of
    /// output channels' 16 products (16·MR·tiles) stays in L1 until it is transformed back.</summary>
    public const int ChunkTiles = 64;
    /// <summary>Backward splits the batch into this many fixed groups: the weight gradient's bits depend on it, never on threads.</summary>
    public const int WeightGradGroups = 8;

    public static bool Applies(in ConvShape s) =>
        s.KernelH == 3 && s.KernelW == 3 && s.Stride == 1 && s.Pad == 1
        && s.InChannels >= MinChannels && s.OutChannels >= MinChannels;

    /// <summary>A 64-byte aligned pointer into a pinned array (the micro-kernel's B loads then never split a cache line).</summary>
    private static float* Aligned(float[] a) => (float*)(((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a)) + 63) & ~(nint)63);

    /// <summary>The next 64-byte boundary at or after <paramref name="p"/>.</summary>
    private static float* Line(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    private static int RoundUp(int x, int unit) => (x + unit - 1) / unit * unit;

    /// <summary>Tiles of one shape and the micro-kernel's layout: TH × TW tiles per plane, the leading dimension of
    /// the tile matrices, channel counts padded to whole MR row tiles (and C to whole NR column tiles for the weight gradient).</summary>
    internal readonly struct Plan
    {
        public readonly int TH, TW, Tiles, Ld, PadC, PadOC, PadCN;
        public readonly MicroKernel Kernel;

        public Plan(in ConvShape s, MicroKernel kernel)
        {
            Kernel = kernel;
            TH = (s.Height + 1) / 2; TW = (s.Width + 1) / 2;
            Tiles = s.Batch * TH * TW;
            // Whole NR column tiles, + 8: a tile row's last 8-lane store may run 7 floats past the chunk's last
            // tile. A multiple of 8 floats keeps every 8-lane load inside one cache line.
            Ld = RoundUp(ChunkTiles, kernel.NR) + 8;
            PadC = RoundUp(s.InChannels, kernel.MR); PadOC = RoundUp(s.OutChannels, kernel.MR);
            PadCN = RoundUp(s.InChannels, kernel.NR);
        }

        public int Chunks => (Tiles + ChunkTiles - 1) / ChunkTiles;

        /// <summary>
        /// Floats from one channel's row of the 16 tile matrices to the next: the 16 rows (ξ) of a channel sit
        /// together, so a transform writes (or reads) one compact block per channel; + one cache line, so the
        /// K rows the micro-kernel walks down fall in different L1 sets.
        /// </summary>
        public long RowStride => 16L * Ld + 16;

        /// <summary>Rows of tile matrices the first scratch region holds: the forward's C, the backward's OC (dy's input tiles).</summary>
        public int RegionRows => Math.Max(PadC, PadOC);

        /// <summary>Per-thread floats: tile matrices, one block of products, the transforms' rows.</summary>
        public long ScratchLength =>
            (RegionRows + Kernel.MR) * RowStride + WinogradTransforms.ScratchLength(TH, TW, ChunkTiles) + 32;

        /// <summary>Floats of one ξ's weight-gradient sums (PadOC, PadCN): whole micro-kernel tiles, no edge cases.</summary>
        public int PartPlane => PadOC * PadCN;

        /// <summary>Floats from one ξ's A panels (dy's transformed tiles, PadOC / MR of them) to the next, for the weight
        /// gradient; + one cache line, as for BXi.</summary>
        public int AXi => RoundUp(PadOC / Kernel.MR * WinogradPanels.APanel(Kernel.MR, ChunkTiles), 16) + 16;

        /// <summary>Floats from one ξ's B panels (x's transformed tiles) to the next: + one cache line, so the 16 stores
        /// of a tile's transform (8 KB apart at 32 channels) do not all fall in one L1 set.</summary>
        public int BXi => PadCN * ChunkTiles + 16;

        /// <summary>Channel stride of dy's staged pixels for the weight gradient.</summary>
        public int GradChannels => WinogradPanels.GradChannels(PadOC, Kernel.MR);

        /// <summary>Backward's per-thread floats: the forward's regions (for the input gradient), then the weight
        /// gradient's A and B panels for all 16 ξ and the staged pixels, each on its own cache line.</summary>
        public long BackwardScratchLength =>
            ScratchLength + 16L * (AXi + (long)BXi) + WinogradPanels.StageLength(TH, TW, ChunkTiles, PadCN, GradChannels) + 48;
    }

    public static void Forward(in ConvShape s, float* x, float* w, float* bias, float* y, ConvWorkspace ws, int threads)
    {
        var plan = new Plan(s, GemmKernels.Select(Simd.Path));
        ws.SlotScratch(threads, plan.ScratchLength);
        float[] u = ConvWorkspace.Grow(ref ws.WinogradWeights, 16L * s.InChannels * plan.PadOC + 16);
        WinogradTransforms.Weights(w, s.OutChannels, s.InChannels, rotate: false, Aligned(u), plan.Kernel.MR);
        var job = ws.WinogradForward;
        job.S = s; job.P = plan; job.X = x; job.U = Aligned(u); job.Bias = bias; job.Y = y; job.Scratch = ws.Scratch;
        KernelThreads.For(job, plan.Chunks, threads);
    }

    public static void Backward(in ConvShape s, float* x, float* w, float* dy, float* dx, float* dw, ConvWorkspace ws, int threads)
    {
        if (dx == null && dw == null) return;
        var plan = new Plan(s, GemmKernels.Select(Simd.Path));
        ws.SlotScratch(threads, plan.BackwardScratchLength);
        int groups = Math.Min(s.Batch, WeightGradGroups);
        // Rows padded to whole MR row tiles, columns to whole NR column tiles (zero operands: the pad products are
        // zero, never read): no edge tiles in the products.
        int partLength = 16 * plan.PartPlane;
        float[] u = ConvWorkspace.Grow(ref ws.WinogradWeights, 16L * s.OutChannels * plan.PadC + 16);
        float[] partArray = ConvWorkspace.Grow(ref ws.WeightPart, (long)groups * partLength + 16);
        if (dx != null) WinogradTransforms.Weights(w, s.OutChannels, s.InChannels, rotate: true, Aligned(u), plan.Kernel.MR);
        var job = ws.WinogradBackward;
        job.S = s; job.P = plan; job.X = x; job.UT = Aligned(u); job.Dy = dy; job.Dx = dx;
        float* part = Aligned(partArray);
        job.Part = dw == null ? null : part;
        job.Groups = groups; job.Scratch = ws.Scratch;
        KernelThreads.For(job, groups, threads);
        if (dw == null) return;
        var sum = new Span<float>(part, partLength);
        for (int g = 1; g < groups; g++)
            System.Numerics.Tensors.TensorPrimitives.Add(sum, new ReadOnlySpan<float>(part + (long)g * partLength, partLength), sum);
        WinogradTransforms.WeightGradient(part, s.OutChannels, s.InChannels, plan.PartPlane, plan.PadCN, dw);
    }

    /// <summary>
    /// out (B, m, H, W) over tiles [p0, p1) from their transformed inputs v[ξ] (k, Ld at RowStride): per block of MR
    /// output channels, the 16 products block[ξ] (MR, Ld at RowStride) = u[block, ξ] (k, MR)ᵀ · v[ξ], each
    /// element one FMA chain over k in order from zero, then transformed back while still in L1.
    /// Columns past the chunk's tiles (up to whole NR tiles) compute garbage that is never read.
    /// </summary>
    private static void Products(in Plan plan, float* u, int k, int m, float* v, int p0, int p1, float* block,
        float* bias, float* output, int h, int w)
    {
        var kernel = plan.Kernel;
        int mr = kernel.MR, nr = kernel.NR, ld = plan.Ld, cols = RoundUp(p1 - p0, nr);
        long uXi = (long)k * mr, rs = plan.RowStride;
        int step = (int)rs;
        for (int m0 = 0; m0 < m; m0 += mr)
        {
            for (int xi = 0; xi < 16; xi++)
            {
                float* a = u + (m0 / mr * 16 + xi) * uXi, b = v + xi * ld, c = block + xi * ld;
                for (int j = 0; j < cols; j += nr)
                    kernel.Fn(k, a, mr, b + j, (nint)rs, c + j, step, false);
            }
            WinogradTransforms.OutputTiles(block, ld, rs, m0, Math.Min(m, m0 + mr), m, h, w, p0, p1, bias, output);
        }
    }

    /// <summary>
    /// part[ξ] (PadOC, PadCN at PadCN) += A[ξ] (PadOC, tiles) · B[ξ] (tiles, PadCN) from the chunk's packed panels
    /// (WinogradPanels' layouts): each micro-kernel tile continues its elements' chains over the tiles in order.
    /// </summary>
    private static void WeightProducts(in Plan plan, float* a, float* b, int tiles, float* part)
    {
        var kernel = plan.Kernel;
        int mr = kernel.MR, nr = kernel.NR, pcn = plan.PadCN, blocks = plan.PadOC / mr;
        int panel = WinogradPanels.APanel(mr, ChunkTiles);
        for (int xi = 0; xi < 16; xi++)
        {
            float* ax = a + (long)xi * plan.AXi, bx = b + (long)xi * plan.BXi, sums = part + (long)xi * plan.PartPlane;
            // One B panel stays in L1 while the A panels stream past it, walking down C's rows as the kernel prefetches.
            for (int j = 0; j < pcn; j += nr)
                for (int i = 0; i < blocks; i++)
                    kernel.Fn(tiles, ax + i * panel, mr, bx + j * ChunkTiles, nr, sums + i * mr * pcn + j, pcn, true);
        }
    }

    internal sealed class ForwardJob : ParallelJob
    {
        public ConvShape S;
        public Plan P;
        public float* X, U, Bias, Y;
        public float[][] Scratch = [];

        // Item: one chunk of tiles.
        public override void Run(int chunk, int slot)
        {
            var s = S; var p = P;
            int p0 = chunk * ChunkTiles, p1 = Math.Min(p.Tiles, p0 + ChunkTiles);
            float* v = Aligned(Scratch[slot]), block = v + p.RegionRows * p.RowStride, rest = block + p.Kernel.MR * p.RowStride;
            WinogradTransforms.InputTiles(X, s.InChannels, s.Height, s.Width, p0, p1, v, p.Ld, p.RowStride, rest);
            Products(p, U, s.InChannels, s.OutChannels, v, p0, p1, block, Bias, Y, s.Height, s.Width);
        }
    }

    internal sealed class BackwardJob : ParallelJob
    {
        public ConvShape S;
        public Plan P;
        public float* X, UT, Dy, Dx, Part;
        public int Groups;
        public float[][] Scratch = [];

        // Item: one fixed group of samples, its tiles in chunks, in order.
        public override void Run(int g, int slot)
        {
            var s = S; var p = P;
            int c = s.InChannels, oc = s.OutChannels, ld = p.Ld, rs = (int)p.RowStride, perSample = p.TH * p.TW;
            int b0 = (int)((long)g * s.Batch / Groups), b1 = (int)((long)(g + 1) * s.Batch / Groups);
            // dy's input tiles for the input gradient, its block of products and the transforms' rows; then the
            // weight gradient's panels (A: dy's, B: x's) and staged pixels.
            float* vx = Aligned(Scratch[slot]);
            float* block = vx + p.RegionRows * p.RowStride, rest = block + p.Kernel.MR * p.RowStride;
            float* pa = Line(rest + WinogradTransforms.ScratchLength(p.TH, p.TW, ChunkTiles));
            float* pb = Line(pa + 16L * p.AXi), stage = Line(pb + 16L * p.BXi);
            float* part = Part == null ? null : Part + (long)g * 16 * p.PartPlane;
            if (part != null) new Span<float>(part, 16 * p.PartPlane).Clear();
            for (int p0 = b0 * perSample; p0 < b1 * perSample; p0 += ChunkTiles)
            {
                int p1 = Math.Min(b1 * perSample, p0 + ChunkTiles), tiles = p1 - p0;
                if (part != null)
                {
                    // part[ξ] (PadOC, PadCN) += (A dy Aᵀ)[ξ] (PadOC, tiles) · (Bᵀ x B)[ξ]ᵀ (tiles, PadCN): each element one
                    // chain over the group's tiles in order.
                    WinogradPanels.InputPanels(X, c, s.Height, s.Width, p0, p1, pb, p.BXi, p.Kernel.NR, ChunkTiles, p.PadCN, stage);
                    WinogradPanels.GradPanels(Dy, oc, s.Height, s.Width, p0, p1, pa, p.AXi, p.Kernel.MR, p.PadOC / p.Kernel.MR, ChunkTiles, p.GradChannels, stage);
                    WeightProducts(p, pa, pb, tiles, part);
                }
                if (Dx != null)
                {
                    // dx: the pad-1 convolution of dy with the turned filters.
                    WinogradTransforms.InputTiles(Dy, oc, s.Height, s.Width, p0, p1, vx, ld, rs, rest);
                    Products(p, UT, oc, c, vx, p0, p1, block, null, Dx, s.Height, s.Width);
                }
            }
        }
    }
}
