// `disttrain scale` end to end: a grid of 1 and 2 simulated worker processes (with a ps process and the coordinator,
// real processes on loopback) on a tiny synthetic dataset runs to completion, and report.md's and results.json's
// numbers are the runs' own metrics.jsonl figures, recomputed here independently; no process it started is left.
// Plus the link-bound model against a hand computation, the grid's parsing and bad input.
using System.Globalization;
using System.Text.Json;
using DistTrain.Cli.Scale;
using Xunit;

namespace DistTrain.Cli.Tests.Scale;

[Collection("Console")]
public sealed class ScaleCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"disttrain-scale-{Guid.NewGuid():N}");

    public ScaleCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    /// <summary>Samples/s and bytes per step of RUN/metrics.jsonl over steps ≥ warmup, read here without the CLI's reader.</summary>
    private static (double Rate, double BytesPerStep, int Steps) Measured(string runDir, int warmup)
    {
        var steps = File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("kind").GetString() == "step" && r.GetProperty("step").GetInt64() >= warmup).ToList();
        double samples = steps.Sum(s => s.GetProperty("samples").GetDouble()), seconds = steps.Sum(s => s.GetProperty("step_s").GetDouble());
        return (samples / seconds, steps.Average(s => s.GetProperty("bytes_sent").GetDouble()), steps.Count);
    }

    [Fact]
    public void A_grid_of_one_and_two_simulated_workers_finishes_and_reports_the_runs_own_metrics()
    {
        var outDir = Path.Combine(_dir, "scale");
        var (code, output, err) = Run("scale", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=400:test-n=100:seed=2",
            "--workers", "1,2", "--ps-nodes", "1", "--micro-batch", "10", "--steps", "8", "--warmup", "2", "--simulate-compute", "2",
            "--out", outDir, "--disttrain", MultiProcessClusterTests.Dll());
        Assert.True(code == 0, err + output);
        Assert.Contains("scale: run 2/2: w2-ps1-sync-m10-none (batch 20)", output);

        var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json"))).RootElement.EnumerateArray().ToList();
        Assert.Equal(["w1-ps1-sync-m10-none", "w2-ps1-sync-m10-none"], results.Select(r => r.GetProperty("name").GetString()));
        var report = File.ReadAllLines(Path.Combine(outDir, "report.md"));
        var measured = new List<(double Rate, double BytesPerStep, int Steps)>();
        foreach (var r in results)
        {
            string name = r.GetProperty("name").GetString()!;
            var m = Measured(Path.Combine(outDir, name), 2);
            measured.Add(m);
            Assert.Equal(6, m.Steps);
            Assert.Equal(m.Rate, r.GetProperty("samples_per_second").GetDouble(), 9);
            Assert.Equal(m.BytesPerStep, r.GetProperty("bytes_per_step").GetDouble(), 6);
            // The report's row of the results table (the CPU table, when the processes' CPU was read, names the run too
            // but has 8 columns): samples/s to one decimal, MB/step to two.
            var row = report.Select(l => l.Split('|').Select(c => c.Trim()).ToArray())
                .Single(cells => cells.Length > 17 && cells[1] == name);
            Assert.Equal(m.Rate.ToString("F1", CultureInfo.InvariantCulture), row[8]);
            Assert.Equal((m.BytesPerStep / 1e6).ToString("F2", CultureInfo.InvariantCulture), row[16]);
            // Each of the batch's 2 micro-batches waits its 2 ms: one worker's share of the step's compute is 4 ms / workers.
            Assert.InRange(r.GetProperty("compute_ms").GetDouble() * r.GetProperty("workers").GetInt32(), 2 * 2 - 0.1, 2 * 2 + 20);
        }
        // Same batch, same model: the same bytes per step whatever the worker count; the speed-up is the ratio of the rates.
        Assert.Equal(measured[0].BytesPerStep, measured[1].BytesPerStep);
        Assert.Equal(measured[1].Rate / measured[0].Rate, results[1].GetProperty("speed_up").GetDouble(), 9);
        Assert.True(File.Exists(Path.Combine(outDir, "speedup.png")) && File.Exists(Path.Combine(outDir, "step_breakdown.png")));
        // Every process it started is gone (their command lines name the experiment's cluster.hocon).
        var config = Path.Combine(outDir, "cluster.hocon");
        var left = Directory.GetDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)).Where(d =>
        {
            try { return File.ReadAllText(Path.Combine(d, "cmdline")).Contains(config, StringComparison.Ordinal); }
            catch (IOException) { return false; }
            catch (UnauthorizedAccessException) { return false; }
        }).ToList();
        Assert.Empty(left);
    }

    [Fact]
    public void A_run_with_latency_goes_through_the_relays_and_each_step_waits_at_least_the_two_trips()
    {
        var outDir = Path.Combine(_dir, "latency");
        var (code, output, err) = Run("scale", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=400:test-n=100:seed=2",
            "--workers", "1", "--ps-nodes", "1", "--micro-batch", "10", "--steps", "5", "--warmup", "1", "--simulate-compute", "1",
            "--latency", "40ms", "--out", outDir, "--disttrain", MultiProcessClusterTests.Dll());
        Assert.True(code == 0, err + output);
        Assert.Contains("delayed 40 ms each way (round trip 80 ms)", File.ReadAllText(Path.Combine(outDir, "report.md")));
        // Every process bound its own address and advertised the relay's.
        var runDir = Path.Combine(outDir, "w1-ps1-sync-m10-none");
        foreach (var host in new[] { "host0", "host1", "host2" })
            Assert.Contains("public-hostname = \"127.0.0.2\"", File.ReadAllText(Path.Combine(runDir, host + ".hocon")));
        Assert.Matches(@"relays: \d+\.\d MB over \d+ connections, each way delayed 40 ms", output);
        // A sync step cannot end before the gradients have reached the shard and the parameters have come back: 2 × 40 ms.
        var run = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json"))).RootElement[0];
        Assert.True(run.GetProperty("step_ms").GetDouble() >= 80, $"step {run.GetProperty("step_ms").GetDouble()} ms < 2 × 40 ms");
    }

    [Fact]
    public void The_link_bound_step_is_the_busiest_direction_of_the_busiest_host()
    {
        // 32 workers, 4 shard hosts, 1 Gbit/s (125 MB/s), 1,000 parameters (4,000 bytes), 32 micro-batches of 4,000 bytes:
        // shard host in 32,000, out 32 × 4,000 / 4 = 32,000, worker out 4,000, worker in 4,000 -> 32,000 B / 125e6 B/s.
        var (seconds, what) = LinkModel.StepSeconds(32, 4, 32 * 4000, 4000, 125e6);
        Assert.Equal(32000 / 125e6, seconds, 15);
        Assert.StartsWith("shard host", what);
        // One worker, one shard host: the worker's own link carries every gradient.
        var (one, _) = LinkModel.StepSeconds(1, 1, 8 * 4000, 4000, 1e6);
        Assert.Equal(8 * 4000 / 1e6, one, 15);
        Assert.Equal(1024 / 0.256, LinkModel.Throughput(1024, 0.256), 9);
        // 50 ms each way: the same transfer plus the gradients' trip to the shards and the parameters' trip back.
        var (delayed, why) = LinkModel.StepSeconds(32, 4, 32 * 4000, 4000, 125e6, 0.050);
        Assert.Equal(32000 / 125e6 + 0.100, delayed, 15);
        Assert.EndsWith("+ 2 × latency", why);
        Assert.Equal(125e6, ScaleGrid.ParseRate("1gbit"));
        Assert.Equal(12.5e6, ScaleGrid.ParseRate("100mbit"));
        Assert.Equal(TimeSpan.FromMilliseconds(50), ScaleGrid.ParseLatency("50ms"));
        Assert.Equal(TimeSpan.FromMilliseconds(50), ScaleGrid.ParseLatency("0.05s"));
        Assert.Equal(TimeSpan.FromMilliseconds(0.5), ScaleGrid.ParseLatency("500us"));
        Assert.Throws<ArgumentException>(() => ScaleGrid.ParseLatency("11s"));
    }

    [Fact]
    public void The_summary_of_a_hand_written_metrics_file_is_its_sums_and_the_first_epoch_at_the_target()
    {
        var run = Path.Combine(_dir, "run");
        Directory.CreateDirectory(run);
        string Step(int step, double seconds, double compute) => string.Create(CultureInfo.InvariantCulture,
            $"{{\"kind\":\"step\",\"step\":{step},\"samples\":64,\"step_s\":{seconds},\"compute_ms\":{compute},\"communication_ms\":10,\"wait_ms\":4,\"bytes_sent\":1000}}");
        string Epoch(int epoch, double seconds, double accuracy) => string.Create(CultureInfo.InvariantCulture,
            $"{{\"kind\":\"epoch\",\"epoch\":{epoch},\"seconds\":{seconds},\"test_accuracy\":{accuracy}}}");
        File.WriteAllLines(Path.Combine(run, "metrics.jsonl"),
            [Step(0, 9.0, 500), Step(1, 0.1, 40), Epoch(0, 2, 0.5), Step(2, 0.3, 80), Epoch(1, 3, 0.8), Epoch(2, 4, 0.9)]);

        var s = RunSummary.Read(run, workers: 2, warmup: 1, targetAccuracy: 0.8);
        Assert.Equal(2, s.Steps);
        Assert.Equal(128 / 0.4, s.SamplesPerSecond, 9);           // step 0 (the warm-up) left out
        Assert.Equal(200, s.StepMs, 9);
        Assert.Equal((40 + 80) / 2.0 / 2, s.ComputeMs, 9);          // the mean step's compute, one worker's share
        Assert.Equal(200 - 30 - 5 - 2, s.OtherMs, 9);
        Assert.Equal(1000 / 64.0, s.BytesPerSample, 9);
        Assert.Equal(2 + 3, s.TimeToTargetSeconds, 9);            // the epoch that reached 80 % ended after 5 s of training
        Assert.Equal(0.9, s.FinalTestAccuracy, 9);
        Assert.True(double.IsNaN(RunSummary.Read(run, 2, 1, 0.95).TimeToTargetSeconds));
    }

    [Fact]
    public void The_grid_multiplies_out_with_workers_fastest()
    {
        var points = ScaleGrid.Points([1, 2], [1, 4], ["sync"], [32], ["none", "int8"]);
        Assert.Equal(["w1-ps1-sync-m32-none", "w2-ps1-sync-m32-none", "w1-ps4-sync-m32-none", "w2-ps4-sync-m32-none",
            "w1-ps1-sync-m32-int8", "w2-ps1-sync-m32-int8", "w1-ps4-sync-m32-int8", "w2-ps4-sync-m32-int8"], points.Select(p => p.Name));
    }

    [Theory]
    [InlineData("--workers", "0,2", "--workers: '0' is not a whole number ≥ 1")]
    [InlineData("--mode", "sync,fast", "--mode: 'fast' is not one of sync, async, local-sgd")]
    [InlineData("--bandwidth", "1gbit", "add --network namespaces")]
    [InlineData("--simulate-compute", "soon", "--simulate-compute 'soon' is not a micro-batch time")]
    [InlineData("--steps", "0", "--steps must be at least 1")]
    [InlineData("--latency", "soon", "--latency 'soon' is not a delay")]
    [InlineData("--outer-optimizer", "nesterov", "add --mode local-sgd")]
    public void Bad_input_names_the_option_and_the_fix(string option, string value, string message)
    {
        var (code, _, err) = Run("scale", option, value, "--out", Path.Combine(_dir, "bad"));
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }
}
