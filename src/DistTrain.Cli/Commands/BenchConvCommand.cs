// `disttrain bench conv`: Conv2d forward + backward (input, weight, bias gradients) at the cnn preset's
// shapes, batch 64, 3x3 pad 1. GFLOP/s counts 3× the forward flops, as libtorch's peer harness does.
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
        var reps = new Option<int>("--reps") { Description = "Timed repetitions (median reported).", DefaultValueFactory = _ => 7 };
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
        output.Note($"SIMD path {Simd.Path}, threads {threads}, gemm {(typeof(Gemm).Assembly.GetName().Version)}");
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
            foreach (var (name, body, flops) in new (string, Action, double)[]
                     { ("conv2d_fwd_bwd", Both, 3 * s.ForwardFlops), ("conv2d_fwd", Fwd, s.ForwardFlops), ("conv2d_bwd", Bwd, 2 * s.ForwardFlops) })
            {
                var (gflops, best, cpu, alloc, ms) = Measure(body, flops, reps);
                output.Add(new Dictionary<string, object?>
                {
                    ["kernel"] = name, ["batch"] = batch, ["in_channels"] = c, ["out_channels"] = oc, ["height"] = hw, ["width"] = hw,
                    ["kernel_h"] = 3, ["kernel_w"] = 3, ["stride"] = 1, ["pad"] = 1, ["threads"] = threads,
                    ["path"] = Conv2dPath(s), ["ms_per_call"] = ms, ["gflops"] = gflops, ["gflops_best"] = best, ["gflops_cpu"] = cpu,
                    ["alloc_bytes_per_call"] = alloc,
                });
            }
        }
        output.Flush();
        return 0;
    }

    private static string Conv2dPath(ConvShape s) =>
        s.Stride == 1 && s.KernelH == 3 && s.KernelW == 3 && s.InChannels <= 2 && s.OutW >= 8 ? "direct" : "im2col+gemm";

    /// <summary>
    /// Median and best wall-clock GFLOP/s over <paramref name="reps"/> runs of ~0.3 s; GFLOP/s per second of
    /// process CPU time (the median rep's: on a shared, overloaded machine wall time mostly measures
    /// waiting); managed bytes allocated per call.
    /// </summary>
    internal static (double gflops, double best, double cpu, double allocPerCall, double msPerCall) Measure(Action body, double flops, int reps)
    {
        for (int i = 0; i < 3; i++) body();
        var sw = Stopwatch.StartNew(); int calls = 0;
        while (sw.Elapsed.TotalSeconds < 0.1) { body(); calls++; }
        int iters = Math.Max(1, (int)(calls * 0.3 / sw.Elapsed.TotalSeconds));
        var rates = new List<double>(); var cpuRates = new List<double>();
        long allocated = 0, total = 0;
        for (int r = 0; r < reps; r++)
        {
            var c0 = Environment.CpuUsage.TotalTime;
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < iters; i++) body();
            double sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            allocated += GC.GetAllocatedBytesForCurrentThread() - a0;
            cpuRates.Add(flops * iters / (Environment.CpuUsage.TotalTime - c0).TotalSeconds / 1e9);
            total += iters;
            rates.Add(flops * iters / sec / 1e9);
        }
        rates.Sort(); cpuRates.Sort();
        double med = rates[rates.Count / 2];
        return (med, rates[^1], cpuRates[cpuRates.Count / 2], (double)allocated / total, flops / med / 1e6);
    }
}
