// Fast convolution entry points: checks operands, then runs the direct 3x3 kernel (tiny C·KH·KW, e.g.
// the 1→32 input layer), Winograd F(2×2, 3×3) (3x3 stride 1 pad 1 with enough channels) or im2col +
// Gemm.Sgemm. The direct and im2col paths reduce each output in (c, kh, kw) order from the bias;
// Winograd in its own fixed order (ConvWinograd.cs). None depends on thread count or SIMD path.
// Letters as in Conv.cs.
namespace DistTrain.Tensors.Kernels;

public static unsafe class Conv2d
{
    /// <summary>x (B,C,H,W), w (OC,C,KH,KW), bias (OC) or empty -> y (B,OC,OH,OW) (overwritten).</summary>
    public static void Forward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y)
    {
        Check(s, "x", x.Length, s.InputLength, false);
        Check(s, "w", w.Length, s.WeightLength, false);
        Check(s, "bias", bias.Length, s.OutChannels, true);
        Check(s, "y", y.Length, s.OutputLength, false);
        if (y.Overlaps(x) || y.Overlaps(w) || y.Overlaps(bias))
            throw new ArgumentException($"Conv2d.Forward: output y overlaps an input (shape {s}); use a separate buffer.", nameof(y));
        if (s.Batch == 0) return;
        var ws = ConvWorkspace.Current;
        int threads = Compute.Threads;
        fixed (float* px = x, pw = w, pb = bias, py = y)
        {
            if (ConvDirect.Applies(s)) ConvDirect.Forward(s, px, pw, bias.IsEmpty ? null : pb, py, ws, threads);
            else if (UsesWinograd(s)) ConvWinograd.Forward(s, px, pw, bias.IsEmpty ? null : pb, py, ws, threads);
            else ConvGemm.Forward(s, px, pw, bias.IsEmpty ? null : pb, py, ws, threads);
        }
    }

    /// <summary>True when <paramref name="s"/> runs on the direct 3x3 kernel rather than im2col + GEMM (a function of the shape only).</summary>
    public static bool UsesDirectKernel(in ConvShape s) => ConvDirect.Applies(s);

    /// <summary>
    /// Whether 3x3 stride-1 pad-1 convolutions with enough channels may run as Winograd F(2×2, 3×3)
    /// (default true; the environment variable DISTTRAIN_CONV_WINOGRAD=0 turns it off, for A/B runs).
    /// Off, they run on im2col + GEMM, whose forward is bit-identical to ConvReference.
    /// </summary>
    public static bool Winograd { get; set; } = Environment.GetEnvironmentVariable("DISTTRAIN_CONV_WINOGRAD") != "0";

    /// <summary>True when <paramref name="s"/> runs as Winograd F(2×2, 3×3) (a function of the shape and <see cref="Winograd"/>).</summary>
    public static bool UsesWinograd(in ConvShape s) => Winograd && !ConvDirect.Applies(s) && ConvWinograd.Applies(s);

    /// <summary>dx (overwritten; may be empty to skip), dw and db accumulated into (dw, db may be empty).</summary>
    public static void Backward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> dy,
        Span<float> dx, Span<float> dw, Span<float> db)
    {
        Check(s, "x", x.Length, s.InputLength, false);
        Check(s, "w", w.Length, s.WeightLength, false);
        Check(s, "dy", dy.Length, s.OutputLength, false);
        Check(s, "dx", dx.Length, s.InputLength, true);
        Check(s, "dw", dw.Length, s.WeightLength, true);
        Check(s, "db", db.Length, s.OutChannels, true);
        if (dx.Overlaps(x) || dx.Overlaps(w) || dx.Overlaps(dy) || dw.Overlaps(x) || dw.Overlaps(dy) || dw.Overlaps(w))
            throw new ArgumentException($"Conv2d.Backward: a gradient output (dx or dw) overlaps an input (shape {s}); use separate buffers.", nameof(dx));
        if (s.Batch == 0) return;
        var ws = ConvWorkspace.Current;
        int threads = Compute.Threads;
        fixed (float* px = x, pw = w, pdy = dy, pdx = dx, pdw = dw, pdb = db)
        {
            float* dxp = dx.IsEmpty ? null : pdx, dwp = dw.IsEmpty ? null : pdw;
            if (!db.IsEmpty) BiasGrad(s, pdy, pdb, ws, threads);
            if (ConvDirect.Applies(s)) ConvDirect.Backward(s, px, pw, pdy, dxp, dwp, ws, threads);
            else if (UsesWinograd(s)) ConvWinograd.Backward(s, px, pw, pdy, dxp, dwp, ws, threads);
            else ConvGemm.Backward(s, px, pw, pdy, dxp, dwp, ws, threads);
        }
    }

    /// <summary>db[o] += Σ_b SumFixed(dy[b,o,:,:]), samples added in order.</summary>
    private static void BiasGrad(in ConvShape s, float* dy, float* db, ConvWorkspace ws, int threads)
    {
        int plane = s.OutH * s.OutW, oc = s.OutChannels;
        var part = ConvWorkspace.Grow(ref ws.BiasPart, (long)s.Batch * oc);
        fixed (float* pp = part)
        {
            var job = ws.BiasJob;
            job.Dy = dy; job.Part = pp; job.Plane = plane; job.Channels = oc;
            KernelThreads.For(job, s.Batch, threads);
        }
        var dbs = new Span<float>(db, oc);
        for (int b = 0; b < s.Batch; b++)
            System.Numerics.Tensors.TensorPrimitives.Add(dbs, part.AsSpan(b * oc, oc), dbs);
    }

    internal sealed class BiasSumJob : ParallelJob
    {
        public float* Dy, Part;
        public int Plane, Channels;
        public override void Run(int b, int slot)
        {
            for (int o = 0; o < Channels; o++)
                Part[b * Channels + o] = Reductions.SumFixed(new ReadOnlySpan<float>(Dy + ((long)b * Channels + o) * Plane, Plane));
        }
    }

    private static void Check(in ConvShape s, string name, int have, int need, bool mayBeEmpty)
    {
        s.Validate();
        if (have == need || (mayBeEmpty && have == 0)) return;
        string shape = name switch
        {
            "x" or "dx" => $"(B,C,H,W)=({s.Batch},{s.InChannels},{s.Height},{s.Width})",
            "w" or "dw" => $"(OC,C,KH,KW)=({s.OutChannels},{s.InChannels},{s.KernelH},{s.KernelW})",
            "bias" or "db" => $"(OC)=({s.OutChannels})",
            _ => $"(B,OC,OH,OW)=({s.Batch},{s.OutChannels},{s.OutH},{s.OutW})",
        };
        throw new ArgumentException(
            $"Conv2d: {name} has {have} floats but shape {shape} needs {need}{(mayBeEmpty ? " (or pass an empty span)" : "")}.", name);
    }
}

/// <summary>Per calling thread: per-worker scratch (im2col columns, padded planes), partial sums and job objects, grown once.</summary>
internal sealed unsafe class ConvWorkspace
{
    [ThreadStatic] private static ConvWorkspace? _current;
    public static ConvWorkspace Current => _current ??= new ConvWorkspace();

    public float[] BiasPart = [], WeightPart = [], WinogradWeights = [];
    public float[][] Scratch = [];
    public readonly Conv2d.BiasSumJob BiasJob = new();
    public readonly ConvGemm.ForwardJob GemmForward = new();
    public readonly ConvGemm.BackwardJob GemmBackward = new();
    public readonly ConvDirect.ForwardJob DirectForward = new();
    public readonly ConvDirect.BackwardJob DirectBackward = new();
    public readonly ConvWinograd.ForwardJob WinogradForward = new();
    public readonly ConvWinograd.BackwardJob WinogradBackward = new();

    public static float[] Grow(ref float[] a, long n)
    {
        if (a.Length < n) a = GC.AllocateUninitializedArray<float>(checked((int)n), pinned: true);
        return a;
    }

    /// <summary>Per-thread scratch of at least <paramref name="n"/> floats for slots 0..threads-1.</summary>
    public float[][] SlotScratch(int threads, long n)
    {
        if (Scratch.Length < threads) Array.Resize(ref Scratch, threads);
        for (int t = 0; t < threads; t++)
        {
            Scratch[t] ??= [];
            Grow(ref Scratch[t], n);
        }
        return Scratch;
    }
}
