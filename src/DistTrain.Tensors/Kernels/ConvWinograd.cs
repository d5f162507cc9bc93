// Winograd F(2×2, 3×3) convolution (Lavin & Gray 2015) for 3×3, stride-1, pad-1 layers with enough
// channels: 16 multiplies per 2×2 output tile and channel pair instead of 36. Tiles are taken in chunks
// of whole tile rows (flat over samples); per chunk the input tiles are transformed (WinogradTransforms),
// multiplied by the transformed filters in 16 Gemm.Sgemm calls (one per ξ, channels as K), and
// transformed back. The input gradient is the same pad-1 convolution of dy with the filters turned by
// 180° and the channels swapped; the weight gradient sums (A dy Aᵀ) ⊙ (Bᵀ d B) over all tiles with the
// tiles as K (F(3×3, 2×2)), then applies Gᵀ · G once.
// Determinism: forward and input gradient outputs each come from their own tile, whatever the chunk
// or thread; weight gradient sums run over a fixed number of sample groups (never the thread count),
// each a chain of chunks in order, groups added in order. Gemm.Sgemm has the same bits on every path.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class ConvWinograd
{
    /// <summary>Fewer channels than this leave the 16 GEMMs too shallow (K) or narrow to pay for the transforms.</summary>
    public const int MinChannels = 8;
    /// <summary>Tiles per chunk: the chunk's transformed inputs and products (16·(C + OC)·tiles floats) stay near L2.</summary>
    public const int ChunkTiles = 112;
    /// <summary>Backward splits the batch into this many fixed groups: the weight gradient's bits depend on it, never on threads.</summary>
    public const int WeightGradGroups = 8;

    public static bool Applies(in ConvShape s) =>
        s.KernelH == 3 && s.KernelW == 3 && s.Stride == 1 && s.Pad == 1
        && s.InChannels >= MinChannels && s.OutChannels >= MinChannels;

    private static float* Ptr(float[] a) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));

    /// <summary>Chunking of one shape: TH × TW tiles per plane, rows of tiles per chunk, leading dimension of the tile matrices.</summary>
    internal readonly struct Plan
    {
        public readonly int TH, TW, ChunkRows, TileRows;
        public readonly long Ld;

        public Plan(in ConvShape s)
        {
            TH = (s.Height + 1) / 2; TW = (s.Width + 1) / 2;
            ChunkRows = Math.Max(1, ChunkTiles / TW);
            TileRows = s.Batch * TH;
            // + 8: a tile row's last 8-lane store may run 7 floats past the chunk's last tile.
            Ld = (ChunkRows * TW + 7) / 8 * 8 + 8;
        }

        /// <summary>Per-thread floats: tile matrices for C and OC channels, the de-interleaved rows, a margin.</summary>
        public long ScratchLength(in ConvShape s) =>
            16 * (s.InChannels + s.OutChannels) * Ld + (2L * ChunkRows + 2) * 2 * WinogradTransforms.HalfRow(TW) + 16;
    }

    public static void Forward(in ConvShape s, float* x, float* w, float* bias, float* y, ConvWorkspace ws, int threads)
    {
        var plan = new Plan(s);
        ws.SlotScratch(threads, plan.ScratchLength(s));
        float[] u = ConvWorkspace.Grow(ref ws.WinogradWeights, 16L * s.OutChannels * s.InChannels);
        WinogradTransforms.Weights(w, s.OutChannels, s.InChannels, rotate: false, Ptr(u));
        var job = ws.WinogradForward;
        job.S = s; job.P = plan; job.X = x; job.U = Ptr(u); job.Bias = bias; job.Y = y; job.Scratch = ws.Scratch;
        KernelThreads.For(job, (plan.TileRows + plan.ChunkRows - 1) / plan.ChunkRows, threads);
    }

    public static void Backward(in ConvShape s, float* x, float* w, float* dy, float* dx, float* dw, ConvWorkspace ws, int threads)
    {
        if (dx == null && dw == null) return;
        var plan = new Plan(s);
        ws.SlotScratch(threads, plan.ScratchLength(s));
        int groups = Math.Min(s.Batch, WeightGradGroups);
        long partLength = 16L * s.OutChannels * s.InChannels;
        float[] u = ConvWorkspace.Grow(ref ws.WinogradWeights, partLength);
        float[] part = ConvWorkspace.Grow(ref ws.WeightPart, groups * partLength);
        if (dx != null) WinogradTransforms.Weights(w, s.OutChannels, s.InChannels, rotate: true, Ptr(u));
        var job = ws.WinogradBackward;
        job.S = s; job.P = plan; job.X = x; job.UT = Ptr(u); job.Dy = dy; job.Dx = dx; job.Part = dw == null ? null : Ptr(part);
        job.Groups = groups; job.Scratch = ws.Scratch;
        KernelThreads.For(job, groups, threads);
        if (dw == null) return;
        var sum = part.AsSpan(0, (int)partLength);
        for (int g = 1; g < groups; g++)
            System.Numerics.Tensors.TensorPrimitives.Add(sum, part.AsSpan((int)(g * partLength), (int)partLength), sum);
        WinogradTransforms.WeightGradient(Ptr(part), s.OutChannels, s.InChannels, dw);
    }

    /// <summary>m[ξ] (rows, ld) = a[ξ] (rows, k) · v[ξ] (k, ld) over the chunk's <paramref name="tiles"/> columns, ξ = 0..15.</summary>
    private static void Products(float* a, int rows, int k, float* v, float* m, long ld, int tiles)
    {
        int l = (int)ld;
        for (int xi = 0; xi < 16; xi++)
            Gemm.Sgemm(false, false, rows, tiles, k,
                new ReadOnlySpan<float>(a + (long)xi * rows * k, rows * k), k,
                new ReadOnlySpan<float>(v + xi * k * ld, (k - 1) * l + tiles), l,
                new Span<float>(m + xi * rows * ld, (rows - 1) * l + tiles), l, accumulate: false, threads: 1);
    }

    internal sealed class ForwardJob : ParallelJob
    {
        public ConvShape S;
        public Plan P;
        public float* X, U, Bias, Y;
        public float[][] Scratch = [];

        // Item: one chunk of tile rows.
        public override void Run(int chunk, int slot)
        {
            var s = S; var p = P;
            int row0 = chunk * p.ChunkRows, row1 = Math.Min(p.TileRows, row0 + p.ChunkRows), tiles = (row1 - row0) * p.TW;
            float* v = Ptr(Scratch[slot]), m = v + 16 * s.InChannels * p.Ld, rows = m + 16 * s.OutChannels * p.Ld;
            WinogradTransforms.InputTiles(X, s.InChannels, s.Height, s.Width, row0, row1, v, p.Ld, rows);
            Products(U, s.OutChannels, s.InChannels, v, m, p.Ld, tiles);
            WinogradTransforms.OutputTiles(m, s.OutChannels, p.Ld, s.Height, s.Width, row0, row1, Bias, Y);
        }
    }

    internal sealed class BackwardJob : ParallelJob
    {
        public ConvShape S;
        public Plan P;
        public float* X, UT, Dy, Dx, Part;
        public int Groups;
        public float[][] Scratch = [];

        // Item: one fixed group of samples, its tile rows in chunks, in order.
        public override void Run(int g, int slot)
        {
            var s = S; var p = P;
            int c = s.InChannels, oc = s.OutChannels, l = (int)p.Ld;
            int b0 = (int)((long)g * s.Batch / Groups), b1 = (int)((long)(g + 1) * s.Batch / Groups);
            float* vx = Ptr(Scratch[slot]), vdy = vx + 16 * c * p.Ld, rows = vdy + 16 * oc * p.Ld;
            float* part = Part == null ? null : Part + (long)g * 16 * oc * c;
            if (part != null) new Span<float>(part, 16 * oc * c).Clear();
            for (int row0 = b0 * p.TH; row0 < b1 * p.TH; row0 += p.ChunkRows)
            {
                int row1 = Math.Min(b1 * p.TH, row0 + p.ChunkRows), tiles = (row1 - row0) * p.TW;
                if (part != null)
                {
                    // part[ξ] (OC, C) += (A dy Aᵀ)[ξ] (OC, tiles) · (Bᵀ x B)[ξ]ᵀ (tiles, C): a chain over the group's tiles in order.
                    WinogradTransforms.InputTiles(X, c, s.Height, s.Width, row0, row1, vx, p.Ld, rows);
                    WinogradTransforms.GradTiles(Dy, oc, s.Height, s.Width, row0, row1, vdy, p.Ld, rows);
                    for (int xi = 0; xi < 16; xi++)
                        Gemm.Sgemm(false, true, oc, c, tiles,
                            new ReadOnlySpan<float>(vdy + xi * oc * p.Ld, (oc - 1) * l + tiles), l,
                            new ReadOnlySpan<float>(vx + xi * c * p.Ld, (c - 1) * l + tiles), l,
                            new Span<float>(part + xi * oc * c, oc * c), c, accumulate: true, threads: 1);
                }
                if (Dx != null)
                {
                    // dx = the pad-1 convolution of dy with the turned filters: dy tiles into vdy, products into vx.
                    WinogradTransforms.InputTiles(Dy, oc, s.Height, s.Width, row0, row1, vdy, p.Ld, rows);
                    Products(UT, c, oc, vdy, vx, p.Ld, tiles);
                    WinogradTransforms.OutputTiles(vx, c, p.Ld, s.Height, s.Width, row0, row1, null, Dx);
                }
            }
        }
    }
}
