// `disttrain sweep` end to end: 4 trials with successive halving as real child `disttrain train` processes on a
// tiny synthetic dataset; the report's and results.jsonl's numbers must be the runs' own metrics.jsonl figures,
// read here independently, and the promotions and the winner must follow from them. Plus bad input.
using System.Globalization;
using System.Text.Json;
using Xunit;

namespace DistTrain.Cli.Tests.Sweep;

[Collection("Console")]
public sealed class SweepCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"disttrain-sweep-{Guid.NewGuid():N}");

    public SweepCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    /// <summary>test_loss of the last epoch record of RUN/metrics.jsonl, parsed here without the CLI's reader.</summary>
    private static double TestLoss(string runDir) =>
        File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Last(r => r.GetProperty("kind").GetString() == "epoch").GetProperty("test_loss").GetDouble();

    [Fact]
    public void A_halving_sweep_of_four_child_trainings_reports_the_runs_own_metrics_and_the_right_winner()
    {
        var outDir = Path.Combine(_dir, "sweep");
        var (code, output, err) = Run("sweep", "lr=log:1e-3..3e-1", "batch=20", "optimizer=adam",
            "--model", "quadrant", "--dataset", "synthetic:quadrants:n=400:test-n=200:margin=0.05:seed=2",
            "--strategy", "random", "--trials", "4", "--unit", "steps", "--budget", "24", "--halving", "6", "--eta", "2",
            "--metric", "test_loss", "--parallel", "2", "--seed", "3", "--out", outDir, "--disttrain", MultiProcessClusterTests.Dll());
        Assert.True(code == 0, err + output);

        // 4 trials × 6 steps, the best 2 × 12, the best 1 × 24: seven child processes, each in its own folder.
        var lines = File.ReadAllLines(Path.Combine(outDir, "results.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var runs = lines.Select(l => (Trial: l.GetProperty("trial").GetInt32(), Rung: l.GetProperty("rung").GetInt32(), Budget: l.GetProperty("budget").GetInt64(),
            Lr: l.GetProperty("params").GetProperty("lr").GetString()!, Metric: l.GetProperty("metric").GetDouble(), Dir: Path.Combine(outDir, l.GetProperty("run").GetString()!))).ToList();
        Assert.Equal([(0, 6L), (0, 6), (0, 6), (0, 6), (1, 12), (1, 12), (2, 24)], runs.Select(r => (r.Rung, r.Budget)).OrderBy(x => x));
        foreach (var r in runs)
        {
            Assert.Equal(TestLoss(r.Dir), r.Metric);
            // quadrant's schedule is constant, so a promoted trial goes on from its previous rung's last step.
            var steps = File.ReadLines(Path.Combine(r.Dir, "metrics.jsonl")).Where(l => l.Contains("\"kind\":\"step\""))
                .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToList();
            long from = r.Rung == 0 ? 0 : r.Budget / 2;
            Assert.Equal(Enumerable.Range((int)from, (int)(r.Budget - from)).Select(i => (long)i), steps);
            var log = File.ReadAllText(Path.Combine(r.Dir, "train.log"));
            Assert.Contains($"--lr {r.Lr} --batch-size 20 --optimizer adam --seed 1 --max-steps {r.Budget}", log);
            Assert.Contains(r.Rung == 0 ? "--threads 1" : $"--resume {Path.Combine(outDir, $"trial-{r.Trial:D3}", $"rung-{r.Rung - 1}")} --threads 1", log);
            Assert.Contains(r.Rung == 2 ? "--checkpoint-every -1" : $"--checkpoint-every {r.Budget}", log);
            Assert.True(File.Exists(Path.Combine(r.Dir, "model.safetensors")));
        }
        Assert.Equal(4, runs.Select(r => r.Lr).Distinct().Count());

        // Promotions and the winner follow from the runs' own numbers (lowest test loss; ties to the lower trial).
        List<int> Best(int rung, int n) => runs.Where(r => r.Rung == rung).OrderBy(r => TestLoss(r.Dir)).ThenBy(r => r.Trial).Take(n).Select(r => r.Trial).ToList();
        Assert.Equal(Best(0, 2).Order(), runs.Where(r => r.Rung == 1).Select(r => r.Trial).Order());
        Assert.Equal(Best(1, 1), runs.Where(r => r.Rung == 2).Select(r => r.Trial));
        var winner = runs.Single(r => r.Rung == 2);

        // The winner's model, trained in three runs (6, then 12, then 24 steps, each continuing the last), is exactly what one
        // plain `disttrain train` of its configuration and the full budget writes, here in this process: a trial's result
        // depends on its configuration and seed, not on the slot or process that ran it, nor on the rungs it went through.
        var fresh = Path.Combine(_dir, "fresh");
        var (tc, to, te) = Run("train", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=400:test-n=200:margin=0.05:seed=2", "--lr", winner.Lr,
            "--batch-size", "20", "--optimizer", "adam", "--seed", "1", "--max-steps", "24", "--epochs", "1000000", "--checkpoint-every", "-1", "--out", fresh);
        Assert.True(tc == 0, te + to);
        Assert.True(File.ReadAllBytes(Path.Combine(fresh, "model.safetensors")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(winner.Dir, "model.safetensors"))),
            "the winner's model differs from a fresh train run of its configuration");
        Assert.Equal(TestLoss(fresh), winner.Metric);

        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        string F(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
        Assert.Contains($"**Best: trial {winner.Trial}, lr={winner.Lr} batch=20 optimizer=adam: test_loss {F(TestLoss(winner.Dir))} after 24 steps**", report);
        // One table row per trial: its furthest rung, that rung's budget and metric, and the metric at each rung it ran.
        foreach (var g in runs.GroupBy(r => r.Trial))
        {
            var rs = g.OrderBy(r => r.Rung).ToList();
            var last = rs[^1];
            string B(string s) => last.Rung == 2 ? $"**{s}**" : s;
            Assert.Contains($"| {B(g.Key.ToString(CultureInfo.InvariantCulture))} | {last.Lr} | 20 | adam | {last.Rung} | {last.Budget} | {B(F(TestLoss(last.Dir)))} | " +
                            string.Join(" → ", rs.Select(r => F(TestLoss(r.Dir)))) + " |", report);
        }
        foreach (var png in new[] { "metric_by_trial.png", "metric_by_lr.png" })
            Assert.True(new FileInfo(Path.Combine(outDir, png)).Length > 1000, png);
        Assert.Contains("[7/7] trial", output);
        Assert.Contains($"best: trial {winner.Trial}", output);
    }

    [Fact]
    public void A_failing_trial_is_reported_with_its_log_and_does_not_stop_the_sweep()
    {
        var outDir = Path.Combine(_dir, "fails");
        // batch 500 is more than the 400 training samples: that trial's `disttrain train` exits with an error.
        var (code, output, err) = Run("sweep", "batch=20,500", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=400:test-n=200:seed=2",
            "--strategy", "grid", "--unit", "steps", "--budget", "3", "--parallel", "2", "--out", outDir, "--disttrain", MultiProcessClusterTests.Dll());
        Assert.True(code == 0, err + output);
        Assert.Contains("trial 1 rung 0 (3 steps) batch=500: FAILED (exit code 2: error: The dataset has 400 samples", output);
        Assert.Contains(Path.Combine(outDir, "trial-001", "train.log"), output);
        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("**Best: trial 0, batch=20", report);
        Assert.Contains("- trial 1, rung 0 (batch=500): exit code 2", report);
        Assert.Contains("log `trial-001/train.log`", report);
    }

    [Theory]
    [InlineData("momentum=0.8..0.99", "'momentum' is not a `disttrain train` option a sweep can set; sweepable: lr, batch")]
    [InlineData("lr=1e-2..1e-4", "lr=1e-2..1e-4: LOW (0.01) must be below HIGH (0.0001); expected log:LOW..HIGH")]
    public void Bad_input_is_one_line_naming_the_parameter(string range, string message)
    {
        var (code, output, err) = Run("sweep", range, "--model", "quadrant", "--out", Path.Combine(_dir, "bad"));
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", output);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")));
    }
}
