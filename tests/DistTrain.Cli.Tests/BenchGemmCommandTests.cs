// `disttrain bench gemm --json`: one JSON object per measurement with the keys the issue names.
// Runs alone: it redirects Console.Out, which is process-wide.
using System.Text.Json;
using Xunit;

namespace DistTrain.Cli.Tests;

[CollectionDefinition(nameof(BenchGemmCommandTests), DisableParallelization = true)]
public sealed class BenchGemmCommandTestsCollection;

[Collection(nameof(BenchGemmCommandTests))]
public sealed class BenchGemmCommandTests
{
    [Fact]
    public void JsonLinesCarryShapeThreadsGflopsAndAllocations()
    {
        var lines = Run("bench", "gemm", "--sizes", "8,33", "--reps", "1", "--threads", "2", "--no-training-shapes", "--json");
        var rows = lines.Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(6, rows.Count); // 2 sizes x (nn, nt, tn)
        foreach (var r in rows)
        {
            Assert.Equal("sgemm", r.GetProperty("kernel").GetString());
            foreach (var key in new[] { "m", "n", "k" }) Assert.True(r.GetProperty(key).GetInt32() is 8 or 33);
            Assert.Equal(2, r.GetProperty("threads").GetInt32());
            Assert.True(r.GetProperty("gflops").GetDouble() > 0);
            Assert.True(r.GetProperty("alloc_bytes_per_call").GetDouble() >= 0);
            Assert.False(string.IsNullOrEmpty(r.GetProperty("simd").GetString()));
            // Two threads: the one-thread reps around them and the speed-up taken against them.
            Assert.True(r.GetProperty("gflops_1t_interleaved").GetDouble() > 0);
            double p25 = r.GetProperty("speedup_vs_1t_p25").GetDouble(), med = r.GetProperty("speedup_vs_1t").GetDouble();
            Assert.True(p25 > 0 && p25 <= med && med <= r.GetProperty("speedup_vs_1t_p75").GetDouble());
        }
        var single = Run("bench", "gemm", "--sizes", "8", "--reps", "1", "--no-training-shapes", "--json").Where(l => l.StartsWith('{'))
            .Select(l => JsonDocument.Parse(l).RootElement);
        Assert.All(single, r => Assert.False(r.TryGetProperty("speedup_vs_1t", out _))); // one thread: nothing to compare
        Assert.Equal(["nn", "nt", "tn"], rows.Take(3).Select(r => r.GetProperty("variant").GetString()!));
    }

    [Fact]
    public void ConvJsonCarriesTheShapeAndTheBracketedSpeedUpAtTwoThreads()
    {
        var rows = Run("bench", "conv", "--batch", "1", "--reps", "1", "--threads", "2", "--json").Where(l => l.StartsWith('{'))
            .Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(6, rows.Count); // 2 shapes x (fwd+bwd, fwd, bwd)
        foreach (var r in rows)
        {
            Assert.Equal(2, r.GetProperty("threads").GetInt32());
            Assert.True(r.GetProperty("gflops").GetDouble() > 0 && r.GetProperty("gflops_1t_interleaved").GetDouble() > 0);
            Assert.True(r.GetProperty("speedup_vs_1t").GetDouble() > 0);
            Assert.True(r.GetProperty("alloc_bytes_per_call").GetDouble() >= 0);
        }
        Assert.Equal(2, DistTrain.Tensors.Compute.Threads); // the one-thread reps gave the setting back
        DistTrain.Tensors.Compute.Threads = 1;
    }

    [Fact]
    public void EachTeamRepIsComparedWithTheOneThreadRepsOnEitherSide()
    {
        // One-thread reps 2.0, 2.4, 1.6 ms around team reps 1.1 and 1.0 ms: (2.0 + 2.4) / 2 / 1.1 and (2.4 + 1.6) / 2 / 1.0.
        var s = Bench.Bracketing.Speedups([2.0, 2.4, 1.6], [1.1, 1.0]);
        Assert.Equal(2, s.Length);
        Assert.Equal(2.0, s[0], 12);
        Assert.Equal(2.0, s[1], 12);
        Assert.Throws<ArgumentException>(() => Bench.Bracketing.Speedups([1.0], [1.0]));
        // The row: one-thread GFLOP/s from the median one-thread time, the speed-up's median and quartiles.
        var row = new Dictionary<string, object?>();
        // A third team rep of 1.2 between 1.6 and 2.0: speed-ups 2.0, 2.0, 1.5; one-thread reps' median 2.0.
        Bench.Bracketing.AddTo(row, [2.0, 2.4, 1.6, 2.0], [1.1, 1.0, 1.2], 4e9);
        Assert.Equal(4e9 / 2.0 / 1e9, (double)row["gflops_1t_interleaved"]!, 12);
        Assert.Equal(2.0, (double)row["speedup_vs_1t"]!, 12);
        Assert.Equal(1.75, (double)row["speedup_vs_1t_p25"]!, 12);
        Assert.Equal(2.0, (double)row["speedup_vs_1t_p75"]!, 12);
    }

    [Fact]
    public void UnknownSimdPathIsRejected()
    {
        Assert.NotEqual(0, RunCode(out _, "bench", "gemm", "--sizes", "8", "--simd", "sse9"));
    }

    [Fact]
    public void PairReportsAloneTwoCopiesAndTheTeamWithTheirRatios()
    {
        var lines = Run("bench", "pair", "--gemm", "48", "--rounds", "3", "--phase-ms", "5", "--warmup-seconds", "0", "--json");
        var r = JsonDocument.Parse(lines.Single(l => l.StartsWith('{'))).RootElement;
        Assert.Equal("sgemm", r.GetProperty("work").GetString());
        Assert.Equal(3, r.GetProperty("rounds").GetInt32());
        foreach (var key in new[] { "alone", "pair_sum", "team" }) Assert.True(r.GetProperty(key).GetDouble() > 0, key);
        foreach (var ratio in new[] { "pair_over_alone", "team_over_alone" })
        {
            double p25 = r.GetProperty(ratio + "_p25").GetDouble(), med = r.GetProperty(ratio).GetDouble(), p75 = r.GetProperty(ratio + "_p75").GetDouble();
            Assert.True(p25 > 0 && p25 <= med && med <= p75, $"{ratio}: {p25} {med} {p75}");
        }
        var model = JsonDocument.Parse(Run("bench", "pair", "--model", "mlp", "--batch", "8", "--rounds", "2", "--phase-ms", "5", "--warmup-seconds", "0", "--json")
            .Single(l => l.StartsWith('{'))).RootElement;
        Assert.Equal("train_step", model.GetProperty("work").GetString());
        Assert.True(model.GetProperty("pair_over_alone").GetDouble() > 0);
        Assert.False(model.TryGetProperty("team", out _)); // a training step has no two-thread team phase
    }

    [Fact]
    public void PairCountsOnlyUnitsRunWhileBothCopiesRan()
    {
        long ms = System.Diagnostics.Stopwatch.Frequency / 1000;
        List<long> T(params int[] at) => at.Select(t => t * ms).ToList();
        // A: units 0-10-20-30-40 ms; B: 5-25-45. Both ran from 5 to 40: A's units 10-40 (3 in 30 ms) and B's 5-25
        // (1 in 20 ms) lie inside; A's first and B's last unit ran partly alone.
        Assert.Equal(3 / 0.030 + 2 * (1 / 0.020), Commands.BenchPairCommand.Overlapped(T(0, 10, 20, 30, 40), 1, T(5, 25, 45), 2), 6);
        // B's one unit is longer than the overlap: its whole phase counts.
        Assert.Equal(4 / 0.040 + 1 / 0.045, Commands.BenchPairCommand.Overlapped(T(0, 10, 20, 30, 40), 1, T(0, 45), 1), 6);
    }

    [Fact]
    public void PairRefusesTwoKindsOfWork()
    {
        Assert.NotEqual(0, RunCode(out var text, "bench", "pair", "--gemm", "64", "--model", "cnn"));
        Assert.Contains("--gemm and --model", text);
        Assert.NotEqual(0, RunCode(out text, "bench", "pair", "--rounds", "0"));
        Assert.Contains("--rounds", text);
    }

    private static string[] Run(params string[] args)
    {
        Assert.Equal(0, RunCode(out var text, args));
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    private static int RunCode(out string text, params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var sw = new StringWriter();
        Console.SetOut(sw); Console.SetError(sw);
        try { return Program.BuildRoot().Parse(args).Invoke(); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); text = sw.ToString(); }
    }
}
