// `disttrain bench conv`: Conv2d forward + backward (input, weight, bias gradients) at the cnn preset's
// shapes, batch 64, 3x3 pad 1. GFLOP/s counts 3× the forward flops, as libtorch's peer harness does. With --threads
// T > 1 each rep is bracketed by one-thread reps, and speedup_vs_1t takes every rep against its two neighbours
// (Bench/Bracketing, as `bench gemm` does).
using System.CommandLine;
using System.Diagnostics;
using DistTrain.Cli.Bench;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Cli.Commands;

public sealed class BenchConvCommand : ICommandFactory
{
    public string? Parent => "bench";

    public Command Create()
    {
        var threads = new Option<int>("--threads") { Description = "Compute threads.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "One JSON object per measurement per line." };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 64 };
        var reps = new Option<int>("--reps") { Description = "Clean timed repetitions wanted (median reported).", DefaultValueFactory = _ => 5 };
        var cmd = new Command("conv", "Conv2d forward+backward GFLOP/s at the cnn preset's shapes (1→32 @28², 32→64 @14²).");
        cmd.Options.Add(threads); cmd.Options.Add(json); cmd.Options.Add(batch); cmd.Options.Add(reps);
        cmd.SetAction(r => Run(r.GetValue(threads), r.GetValue(json), r.GetValue(batch), r.GetValue(reps)));
        return cmd;
    }

    private static int Run(int threads, bool json, int batch, int reps)
    {
        if (threads < 1 || batch < 1 || reps < 1)
        {
            Console.Error.WriteLine("--threads, --batch and --reps must be at least 1.");
            return 2;
        }
        Compute.Threads = threads;
        var output = new BenchOutput(json);
        output.Note($"Conv2d on {Simd.Path}, {threads} thread(s); GFLOP/s counts 3x forward flops for fwd+bwd (as the libtorch peer); median of {reps} clean reps (others < 0.1 core), else of all");
        foreach (var (c, oc, hw) in new[] { (1, 32, 28), (32, 64, 14) })
        {
            var s = new ConvShape(batch, c, hw, hw, oc, 3, 3, 1, 1);
            var rnd = new Random(42);
            float[] Rand(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rnd.NextDouble() * 2 - 1); return a; }
            float[] x = Rand(s.InputLength), w = Rand(s.WeightLength), b = Rand(oc), dy = Rand(s.OutputLength);
            float[] y = new float[s.OutputLength], dx = new float[s.InputLength], dw = new float[s.WeightLength], db = new float[oc];
            void Fwd() => Conv2d.Forward(s, x, w, b, y);
            void Bwd() { dw.AsSpan().Clear(); db.AsSpan().Clear(); Conv2d.Backward(s, x, w, dy, dx, dw, db); }
            void Both() { Fwd(); Bwd(); }
            // Let tiered compilation settle on every kernel before the first figure.
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed.TotalSeconds < 0.3) Both();
            foreach (var (name, body, flops) in new (string, Action, double)[]
                     { ("conv2d_fwd_bwd", Both, 3 * s.ForwardFlops), ("conv2d_fwd", Fwd, s.ForwardFlops), ("conv2d_bwd", Bwd, 2 * s.ForwardFlops) })
            {
                var row = new Dictionary<string, object?>
                {
                    ["kernel"] = name, ["batch"] = batch, ["in_channels"] = c, ["out_channels"] = oc, ["height"] = hw, ["width"] = hw,
                    ["kernel_h"] = 3, ["kernel_w"] = 3, ["stride"] = 1, ["pad"] = 1, ["threads"] = threads, ["path"] = Conv2dPath(s),
                };
                foreach (var kv in Measure(body, flops, reps, threads)) row[kv.Key] = kv.Value;
                output.Add(row);
            }
        }
        output.Flush();
        return 0;
    }

    private static string Conv2dPath(ConvShape s) => Conv2d.UsesDirectKernel(s) ? "direct" : Conv2d.UsesWinograd(s) ? "winograd" : "im2col+gemm";

    /// <summary>
    /// Timed repetitions of ~0.3 s until <paramref name="reps"/> clean ones (other processes used under 0.1
    /// core, as the libtorch peer counts them) or 3× reps. Median wall GFLOP/s over the clean reps when
    /// there are at least 3, else over all (clean = false); best rep; GFLOP/s per process-CPU second;
    /// managed bytes allocated per call on the calling thread (kernel helpers allocate nothing either). With
    /// <paramref name="threads"/> > 1 (the value of Compute.Threads the body runs with), every rep is bracketed by reps
    /// at one thread, for speedup_vs_1t (Bench/Bracketing).
    /// </summary>
    internal static Dictionary<string, object?> Measure(Action body, double flops, int reps, int threads = 1)
    {
        for (int i = 0; i < 3; i++) body();
        var sw = Stopwatch.StartNew(); int calls = 0;
        while (sw.Elapsed.TotalSeconds < 0.1) { body(); calls++; }
        int iters = Math.Max(1, (int)(calls * 0.3 / sw.Elapsed.TotalSeconds));
        List<double> all = [], clean = [], cpu = [];
        double foreignSum = 0;
        long allocated = 0, total = 0;
        var load = new ForeignLoad();
        List<double> alone = [], wall = [];
        double AloneRep()
        {
            Compute.Threads = 1;
            try
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < iters; i++) body();
                return Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
            finally { Compute.Threads = threads; }
        }
        if (threads > 1) alone.Add(AloneRep());
        while (clean.Count < reps && all.Count < 3 * reps)
        {
            load.Start();
            double c0 = CpuTime.ProcessSeconds();
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < iters; i++) body();
            double sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            allocated += GC.GetAllocatedBytesForCurrentThread() - a0;
            cpu.Add(flops * iters / (CpuTime.ProcessSeconds() - c0) / 1e9);
            double foreign = load.Stop();
            foreignSum += foreign;
            total += iters;
            double rate = flops * iters / sec / 1e9;
            all.Add(rate);
            wall.Add(sec);
            if (foreign < 0.1) clean.Add(rate);
            if (threads > 1) alone.Add(AloneRep());
        }
        bool isClean = clean.Count >= 3;
        var used = isClean ? clean : all;
        used.Sort(); cpu.Sort();
        double med = used[used.Count / 2];
        var row = new Dictionary<string, object?>
        {
            ["ms_per_call"] = flops / med / 1e6, ["gflops"] = med, ["gflops_best"] = all.Max(), ["gflops_cpu"] = cpu[cpu.Count / 2],
            ["clean"] = isClean, ["reps"] = $"{clean.Count}/{all.Count}", ["foreign_cores"] = foreignSum / all.Count,
            ["alloc_bytes_per_call"] = (double)allocated / total,
        };
        if (threads > 1) Bracketing.AddTo(row, alone, wall, flops * iters); // seconds per rep of iters calls on both sides
        return row;
    }
}
