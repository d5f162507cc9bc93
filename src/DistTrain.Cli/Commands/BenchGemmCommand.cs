// `disttrain bench gemm`: SGEMM GFLOP/s (median of reps) and managed bytes allocated per call, for square
// sizes in the nn / nt / tn variants and for the small shapes training runs (Dense and LSTM layers). With
// --threads T > 1 every rep is bracketed by one-thread reps of the same calls, and the speed-up over one thread is
// taken rep by rep against them (Bench/Bracketing).
using System.CommandLine;
using System.Diagnostics;
using DistTrain.Cli.Bench;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Cli.Commands;

public sealed class BenchGemmCommand : ICommandFactory
{
    public string? Parent => "bench";

    // (label, m, n, k) of the forward GEMM of a training layer at batch 64; its backward runs
    // dX = dY·Wᵀ (nt, m x k x n) and dW = Xᵀ·dY (tn, k x n x m).
    private static readonly (string Label, int M, int N, int K)[] TrainingShapes =
    [
        ("dense784x256", 64, 256, 784),
        ("dense256x128", 64, 128, 256),
        ("lstm156x512", 64, 512, 156),
    ];

    public Command Create()
    {
        var threads = new Option<int>("--threads") { Description = "Compute threads (default 1).", DefaultValueFactory = _ => 1 };
        var sizes = new Option<string>("--sizes") { Description = "Square sizes, comma separated.", DefaultValueFactory = _ => "256,512,1024,2048" };
        var reps = new Option<int>("--reps") { Description = "Timed repetitions per shape (median reported).", DefaultValueFactory = _ => 5 };
        var simd = new Option<string?>("--simd") { Description = "Force a narrower SIMD path: avx512, avx2 or portable." };
        var small = new Option<bool>("--no-training-shapes") { Description = "Skip the training-shaped GEMMs." };
        var json = new Option<bool>("--json") { Description = "One JSON object per measurement per line." };
        var cmd = new Command("gemm", "SGEMM throughput: square sizes (nn, nt, tn) and training-shaped GEMMs.")
        {
            threads, sizes, reps, simd, small, json,
        };
        cmd.SetAction(r =>
        {
            int t = r.GetValue(threads);
            if (t < 1) throw new ArgumentException($"--threads must be at least 1, got {t}.");
            var list = r.GetValue(sizes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, out int v) && v > 0 ? v : throw new ArgumentException($"--sizes: '{s}' is not a positive integer."))
                .ToArray();
            using var forced = Simd.Force(ParsePath(r.GetValue(simd)));
            var output = new BenchOutput(r.GetValue(json));
            Measure("warm-up", false, false, 64, 64, 64, t, 3); // lets tiered JIT settle before the first figure
            output.Note($"SGEMM on {Simd.Path}, {t} thread(s), median of {r.GetValue(reps)} clean reps (others < 0.1 core), else of all");
            foreach (int s in list)
                foreach (var (ta, tb, name) in Variants)
                    output.Add(Measure(name, ta, tb, s, s, s, t, r.GetValue(reps)));
            if (!r.GetValue(small))
                foreach (var (label, m, n, k) in TrainingShapes)
                {
                    output.Add(Measure($"{label}.fwd.nn", false, false, m, n, k, t, r.GetValue(reps)));
                    output.Add(Measure($"{label}.dx.nt", false, true, m, k, n, t, r.GetValue(reps)));
                    output.Add(Measure($"{label}.dw.tn", true, false, k, n, m, t, r.GetValue(reps)));
                }
            output.Flush();
            return 0;
        });
        return cmd;
    }

    private static readonly (bool TransA, bool TransB, string Name)[] Variants =
        [(false, false, "nn"), (false, true, "nt"), (true, false, "tn")];

    private static SimdPath ParsePath(string? s) => s?.ToLowerInvariant() switch
    {
        null or "" => Simd.Best,
        "avx512" => SimdPath.Avx512,
        "avx2" => SimdPath.Avx2,
        "portable" => SimdPath.Portable,
        _ => throw new ArgumentException($"--simd '{s}' is not one of avx512, avx2, portable."),
    };

    private static Dictionary<string, object?> Measure(string variant, bool ta, bool tb, int m, int n, int k, int threads, int reps)
    {
        var rng = new Random(42);
        var a = new float[m * k];
        var b = new float[k * n];
        var c = new float[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() - 0.5);
        for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() - 0.5);
        int lda = ta ? m : k, ldb = tb ? k : n;
        void Call() => Gemm.Sgemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, false, threads);
        void CallAlone() => Gemm.Sgemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, false, 1);

        double flops = 2.0 * m * n * k;
        // Warm up (~0.2 s: tiered JIT settles, workspaces grow), then ~0.1 s per rep: long enough for timer,
        // wake-up and /proc/stat's 10 ms ticks to stay small.
        var sw = Stopwatch.StartNew();
        int warm = 0;
        while (warm < 2 || sw.Elapsed.TotalSeconds < 0.2) { Call(); warm++; }
        int calls = (int)Math.Clamp(0.1 / (sw.Elapsed.TotalSeconds / warm), 1, 100_000);
        // Reps until `reps` clean ones (others used < 0.1 core, as the libtorch peer counts them) or 3x reps;
        // the median is over clean reps when there are at least 3, else over all (marked clean=false).
        var all = new List<double>();
        var clean = new List<double>();
        var load = new ForeignLoad();
        double foreignSum = 0;
        var alone = new List<double>(); // one-thread reps around the team's (threads > 1 only)
        double AloneRep()
        {
            sw.Restart();
            for (int i = 0; i < calls; i++) CallAlone();
            return sw.Elapsed.TotalSeconds / calls;
        }
        if (threads > 1) alone.Add(AloneRep());
        while (clean.Count < reps && all.Count < 3 * reps)
        {
            load.Start();
            sw.Restart();
            for (int i = 0; i < calls; i++) Call();
            double wall = sw.Elapsed.TotalSeconds / calls;
            double foreign = load.Stop();
            foreignSum += foreign;
            all.Add(wall);
            if (foreign < 0.1) clean.Add(wall);
            if (threads > 1) alone.Add(AloneRep());
        }
        bool isClean = clean.Count >= 3;
        var used = isClean ? clean : all;
        double median = Stats.Median(used), best = all.Min();

        // Managed bytes over further calls, on all threads of the process (the pool's workers included).
        long allocBefore = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < calls; i++) Call();
        long alloc = GC.GetTotalAllocatedBytes(precise: true) - allocBefore;

        var row = new Dictionary<string, object?>
        {
            ["kernel"] = "sgemm", ["variant"] = variant, ["m"] = m, ["n"] = n, ["k"] = k, ["threads"] = threads,
            ["simd"] = Simd.Path.ToString(), ["ms"] = median * 1e3, ["gflops"] = flops / median / 1e9, ["best_gflops"] = flops / best / 1e9,
            ["alloc_bytes_per_call"] = (double)alloc / calls,
            ["clean"] = isClean, ["reps"] = $"{clean.Count}/{all.Count}", ["foreign_cores"] = foreignSum / all.Count,
        };
        if (threads > 1) Bracketing.AddTo(row, alone, all, flops); // seconds per call on both sides
        return row;
    }
}
