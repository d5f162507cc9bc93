// The pure parts of `disttrain sweep`, without training: range parsing and its errors, the grid's exact
// enumeration, seeded random draws, the successive-halving plan and its winner on a synthetic training curve
// with a known best learning rate, Bayesian search against random search on a seeded objective with a known
// optimum, and a schedule that does not depend on how long each trial takes.
using DistTrain.Cli.Sweep;
using Xunit;

namespace DistTrain.Cli.Tests.Sweep;

public sealed class SweepSearchTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static readonly TrainOptionCatalog Catalog = TrainOptionCatalog.FromTrainCommand();

    static SearchSpace Space(params string[] words) => SearchSpace.Parse(words, Catalog);

    /// <summary>A trial runner that evaluates a formula (optionally after a delay) instead of training.</summary>
    sealed class FakeRunner(Func<TrialRun, double> objective, Func<TrialRun, int>? delayMs = null) : ITrialRunner
    {
        public List<TrialRun> Runs { get; } = [];

        public async Task<TrialOutcome> RunAsync(TrialRun run, CancellationToken cancel)
        {
            lock (Runs) Runs.Add(run);
            if (delayMs is not null) await Task.Delay(delayMs(run), cancel);
            double v = objective(run);
            return double.IsNaN(v) ? TrialOutcome.Failed("diverged", Path.Combine(run.RunDir, "train.log"), 0) : new TrialOutcome(v, null, null, 0);
        }
    }

    static readonly SweepMetric Loss = new("test_loss", Maximize: false);

    static SweepOutcome Sweep(SearchSpace space, ISearchStrategy strategy, HalvingPlan plan, ITrialRunner runner, int parallel = 1) =>
        new SweepScheduler(strategy, plan, Loss, parallel, "/tmp/sweep-test").RunAsync(runner).GetAwaiter().GetResult();

    [Fact]
    public void Ranges_parse_into_options_with_kinds_and_types()
    {
        var s = Space("lr=log:1e-4..1e-2", "wd=0..0.1:5", "batch=64,128,256", "optimizer=adam,sgd", "clip-norm=1");
        var (lr, wd, batch, opt, clip) = (s.Ranges[0], s.Ranges[1], s.Ranges[2], s.Ranges[3], s.Ranges[4]);
        Assert.Equal(("--lr", RangeKind.Log, 1e-4, 1e-2, false), (lr.Option, lr.Kind, lr.Low, lr.High, lr.Integer));
        Assert.Equal(("--weight-decay", RangeKind.Linear, 0.0, 0.1, (int?)5), (wd.Option, wd.Kind, wd.Low, wd.High, wd.GridPoints));
        Assert.Equal(("--batch-size", RangeKind.Choice, true), (batch.Option, batch.Kind, batch.Integer));
        Assert.Equal(["64", "128", "256"], batch.Choices);
        Assert.Equal(("--optimizer", false), (opt.Option, opt.Integer));
        Assert.Equal(["1"], clip.Choices);
        Assert.Equal(["lr", "wd", "batch", "optimizer"], s.Varied.Select(r => r.Name));

        // Log ranges are uniform in log space: the middle of 1e-4..1e-2 is 1e-3; values keep 4 significant digits.
        Assert.Equal("0.001", lr.Decode(0.5));
        Assert.Equal("0.0001", lr.Decode(0));
        Assert.Equal(0.5, lr.Encode("0.001"), 12);
        Assert.Equal("0.05", wd.Decode(0.5));
        Assert.Equal("0.01234", Space("wd=0..1").Ranges[0].Decode(0.0123449));
        // Integer options get integers; a list is cut into equal cells.
        Assert.Equal("100", Space("batch=64..128").Ranges[0].Decode(0.5625));
        Assert.Equal(["64", "128", "256"], new[] { 0.0, 0.4, 0.99 }.Select(batch.Decode));
    }

    [Theory]
    [InlineData("momentum=0.8..0.99", "'momentum' is not a `disttrain train` option", "sweepable: lr, batch, wd, clip")]
    [InlineData("lr", "'lr' is not NAME=RANGE", "log:1e-4..1e-2")]
    [InlineData("lr=", "'lr=' is not NAME=RANGE", "batch=64,128,256")]
    [InlineData("lr=log:0..1e-2", "lr=log:0..1e-2: a log range needs LOW > 0, not 0", "log:LOW..HIGH")]
    [InlineData("lr=1e-2..1e-4", "lr=1e-2..1e-4: LOW (0.01) must be below HIGH (0.0001)", "LOW..HIGH")]
    [InlineData("lr=1e-4..big", "lr=1e-4..big: 'big' is not a number", "V1,V2,...")]
    [InlineData("lr=log:1e-4", "lr=log:1e-4: log: needs a range LOW..HIGH", "log:LOW..HIGH")]
    [InlineData("lr=1e-4..1e-2:0", "lr=1e-4..1e-2:0: ':0' is not a positive count of grid points", ":N")]
    [InlineData("batch=64,100.5", "batch=64,100.5: '100.5' is not an integer, which --batch-size takes", "V1,V2,...")]
    [InlineData("batch=32.5..64", "batch=32.5..64: --batch-size takes integers", "LOW..HIGH")]
    [InlineData("optimizer=1..2", "optimizer=1..2: --optimizer takes names, not numbers", "optimizer=A,B")]
    [InlineData("batch=64,,128", "batch=64,,128: an empty value in the list", "V1,V2,...")]
    [InlineData("lr=0.1,0.1", "lr=0.1,0.1: a value is listed twice", "V1,V2,...")]
    [InlineData("epochs=1..5", "epochs is set by the sweep itself", "sweepable:")]
    public void Bad_ranges_name_the_parameter_and_the_expected_forms(string word, string message, string hint)
    {
        var e = Assert.Throws<ArgumentException>(() => Space(word));
        Assert.Contains(message, e.Message);
        Assert.Contains(hint, e.Message);
    }

    [Fact]
    public void Two_names_for_one_option_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => Space("lr=0.1,0.2", "--lr=0.3"));
        Assert.Contains("both set --lr", e.Message);
    }

    [Fact]
    public void Grid_enumerates_every_combination_exactly_in_order()
    {
        var grid = new GridSearch(Space("lr=log:1e-4..1e-2:3", "batch=64,128", "optimizer=adam"), defaultPoints: 3).Points;
        string[][] expected =
        [
            ["0.0001", "64", "adam"], ["0.0001", "128", "adam"], ["0.001", "64", "adam"],
            ["0.001", "128", "adam"], ["0.01", "64", "adam"], ["0.01", "128", "adam"],
        ];
        Assert.Equal(expected.Length, grid.Count);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], grid[i].Values);
        // Linear points include both ends; the default count applies to a range without :N; integer ranges dedupe.
        Assert.Equal(["0", "0.025", "0.05", "0.075", "0.1"], Space("wd=0..0.1:5").Grid(3).Select(p => p.Values[0]));
        Assert.Equal(["16", "40", "64"], Space("batch=16..64").Grid(3).Select(p => p.Values[0]));
        Assert.Equal(["1", "2"], Space("batch=1..2:4").Grid(3).Select(p => p.Values[0]));
        Assert.Equal(4 * 3 * 2, Space("lr=log:1e-5..1e-2:4", "wd=0..0.1", "batch=32,64").Grid(3).Count);
    }

    [Fact]
    public void Random_search_is_reproducible_from_its_seed_and_log_uniform()
    {
        var space = Space("lr=log:1e-5..1e-1", "batch=32,64,128,256", "wd=0..0.5");
        List<TrialPoint> Draw(ulong seed) => Enumerable.Range(0, 2000).Select(i => new RandomSearch(space, seed).Propose(i, [], [])).ToList();
        var a = Draw(7);
        Assert.Equal(a, Draw(7));
        Assert.NotEqual(a.Take(10), Draw(8).Take(10));
        var lrs = a.Select(p => double.Parse(p.Values[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.All(lrs, v => Assert.InRange(v, 1e-5, 1e-1));
        // Log-uniform: half the draws under the geometric mean 1e-3 (a linear draw would put 1% there), a quarter under 1e-4.
        Assert.InRange(lrs.Count(v => v < 1e-3) / 2000.0, 0.46, 0.54);
        Assert.InRange(lrs.Count(v => v < 1e-4) / 2000.0, 0.22, 0.28);
        foreach (var b in new[] { "32", "64", "128", "256" }) Assert.InRange(a.Count(p => p.Values[1] == b) / 2000.0, 0.21, 0.29);
    }

    [Fact]
    public void Halving_plans_rungs_up_to_the_full_budget()
    {
        Assert.Equal([new Rung(0, 8, 100), new Rung(1, 2, 300), new Rung(2, 1, 900)], HalvingPlan.Create(8, 100, 900, 3, BudgetUnit.Steps).Rungs);
        Assert.Equal([new Rung(0, 4, 50), new Rung(1, 2, 100), new Rung(2, 1, 200)], HalvingPlan.Create(4, 50, 200, 2, BudgetUnit.Steps).Rungs);
        // The last rung is clipped to the budget; a single survivor still trains to it.
        Assert.Equal([new Rung(0, 27, 1), new Rung(1, 9, 3), new Rung(2, 3, 9), new Rung(3, 1, 10)], HalvingPlan.Create(27, 1, 10, 3, BudgetUnit.Epochs).Rungs);
        Assert.Equal([new Rung(0, 5, 300)], HalvingPlan.Single(5, 300, BudgetUnit.Steps).Rungs);
        Assert.Contains("--halving 500 is above --budget 300", Assert.Throws<ArgumentException>(() => HalvingPlan.Create(4, 500, 300, 3, BudgetUnit.Steps)).Message);
        Assert.Contains("--eta", Assert.Throws<ArgumentException>(() => HalvingPlan.Create(4, 1, 300, 1, BudgetUnit.Steps)).Message);
        Assert.Equal([1, 3], HalvingPlan.Promote([(0, 0.5), (1, 0.2), (2, double.PositiveInfinity), (3, 0.2)], 2));
    }

    /// <summary>
    /// A training curve: loss(lr, steps) = floor + (1 − floor)·exp(−2·lr·steps), floor = 0.02 + 28·lr².
    /// A large lr drops fast to a high floor, a small one slowly to a low floor.
    /// </summary>
    static double Curve(double lr, long steps)
    {
        double floor = 0.02 + 28 * lr * lr;
        return floor + (1 - floor) * Math.Exp(-2 * lr * steps);
    }

    static double Lr(TrialRun r) => double.Parse(r.Point.Values[0], System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Successive_halving_ends_with_the_learning_rate_that_is_best_at_the_full_budget()
    {
        var space = Space("lr=log:1e-4..1e-1:4");
        var strategy = new GridSearch(space, 3);
        var plan = HalvingPlan.Create(4, 50, 200, 2, BudgetUnit.Steps);
        var runner = new FakeRunner(r => Curve(Lr(r), r.Budget));
        var outcome = Sweep(space, strategy, plan, runner, parallel: 2);

        // The known answer, computed from the curve directly: of the four rates, 0.01 has the lowest loss after 200 steps.
        var candidates = strategy.Points.Select(p => double.Parse(p.Values[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal([0.0001, 0.001, 0.01, 0.1], candidates);
        Assert.Equal(0.01, candidates.MinBy(lr => Curve(lr, 200)));
        // It is not what the first rung ranks first (0.1 leads after 50 steps), so the later rungs decide.
        Assert.Equal(0.1, candidates.MinBy(lr => Curve(lr, 50)));

        Assert.Equal([(0, 50L), (0, 50), (0, 50), (0, 50), (1, 100), (1, 100), (2, 200)], runner.Runs.Select(r => (r.Rung, r.Budget)).OrderBy(x => x));
        Assert.Equal([2, 3], runner.Runs.Where(r => r.Rung == 1).Select(r => r.Trial).Order());
        Assert.NotNull(outcome.Best);
        Assert.Equal((2, 2, "0.01"), (outcome.Best!.Run.Trial, outcome.Best.Run.Rung, outcome.Best.Run.Point.Values[0]));
        Assert.Equal(Curve(0.01, 200), outcome.Best.Outcome.Metric);
        Assert.Equal(Path.Combine("/tmp/sweep-test", "trial-002", "rung-2"), outcome.Best.Run.RunDir);
    }

    /// <summary>A smooth objective with its minimum 0 at lr = 10^−2.5, wd = 0.03 (both inside the ranges).</summary>
    static double Bowl(TrialRun r)
    {
        double lr = Lr(r), wd = double.Parse(r.Point.Values[1], System.Globalization.CultureInfo.InvariantCulture);
        return Math.Pow(Math.Log10(lr) + 2.5, 2) + 40 * Math.Pow(wd - 0.03, 2);
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(2UL)]
    [InlineData(3UL)]
    public void Bayesian_search_finds_at_least_as_good_a_configuration_as_random_search_on_the_same_budget(ulong seed)
    {
        var space = Space("lr=log:1e-5..1e-1", "wd=0..0.1");
        var plan = HalvingPlan.Single(15, 100, BudgetUnit.Steps);
        var random = Sweep(space, new RandomSearch(space, seed), plan, new FakeRunner(Bowl));
        var bayes = Sweep(space, new BayesianSearch(space, seed), plan, new FakeRunner(Bowl));
        Assert.Equal(15, random.Results.Count);
        Assert.Equal(15, bayes.Results.Count);
        double r = random.Best!.Outcome.Metric, b = bayes.Best!.Outcome.Metric;
        output.WriteLine($"seed {seed}: random best {r:G4} at {random.Best.Run.Point}, Bayesian best {b:G4} at {bayes.Best.Run.Point}");
        Assert.True(b <= r, $"seed {seed}: Bayesian best {b} ({bayes.Best.Run.Point}) is worse than random's {r} ({random.Best.Run.Point})");
        // And it gets close to the known optimum (0 at lr ≈ 0.003162, wd = 0.03): within 0.05 of it.
        Assert.True(b < 0.05, $"seed {seed}: Bayesian best {b} at {bayes.Best.Run.Point}");
        // Its first trials are random search's own draws; only what follows is the model's.
        Assert.Equal(random.Results.Take(3).Select(x => x.Run.Point), bayes.Results.Take(3).Select(x => x.Run.Point));
    }

    [Fact]
    public void A_parallel_Bayesian_sweep_is_the_same_whichever_trial_finishes_first_and_survives_failures()
    {
        var space = Space("lr=log:1e-5..1e-1", "wd=0..0.1");
        // Trial 1 "diverges": it fails, the sweep goes on and the model counts it as the worst score seen.
        double Objective(TrialRun r) => r.Trial == 1 ? double.NaN : Bowl(r) + 0.01 * r.Budget;
        var plan = HalvingPlan.Create(9, 1, 9, 3, BudgetUnit.Epochs);
        SweepOutcome Run(Func<TrialRun, int> delay) =>
            Sweep(space, new BayesianSearch(space, 5), plan, new FakeRunner(Objective, delay), parallel: 3);
        var fastFirst = Run(r => r.Trial % 3 * 15);
        var slowFirst = Run(r => (2 - r.Trial % 3) * 15);
        static List<(int, int, string, double)> Key(SweepOutcome o) =>
            o.Results.Select(r => (r.Run.Trial, r.Run.Rung, r.Run.Point.ToString(), r.Outcome.Metric)).OrderBy(x => x.Item1).ThenBy(x => x.Item2).ToList();
        Assert.NotEqual(fastFirst.Results.Select(r => r.Run.Trial), slowFirst.Results.Select(r => r.Run.Trial)); // they did finish in other orders
        Assert.Equal(Key(fastFirst), Key(slowFirst));
        Assert.Equal([9, 3, 1], fastFirst.Results.GroupBy(r => r.Run.Rung).OrderBy(g => g.Key).Select(g => g.Count()));
        Assert.Contains(fastFirst.Results, r => !r.Ok);
        Assert.True(fastFirst.Best!.Ok);
        Assert.Equal(2, fastFirst.Best.Run.Rung);
    }

    [Fact]
    public void A_trial_command_line_depends_only_on_its_configuration_and_budget()
    {
        var space = Space("lr=log:1e-4..1e-2", "batch=64,128", "optimizer=sgd");
        var run = new TrialRun(5, 1, new TrialPoint(["0.001", "128", "sgd"]), 300, "out/trial-005/rung-1");
        var steps = new TrialSettings("mlp", "fashion-mnist", 7, BudgetUnit.Steps, space);
        Assert.Equal(
            ["train", "--model", "mlp", "--dataset", "fashion-mnist", "--lr", "0.001", "--batch-size", "128", "--optimizer", "sgd", "--seed", "7",
             "--max-steps", "300", "--epochs", "1000000", "--threads", "1", "--checkpoint-every", "-1", "--out", "out/trial-005/rung-1"],
            TrainArguments.For(run, steps));
        // An epochs budget is --epochs; a swept seed replaces the trial seed; no --dataset means the model's own.
        var seeded = Space("lr=0.01", "seed=1,2");
        Assert.Equal(
            ["train", "--model", "cnn", "--lr", "0.01", "--seed", "2", "--epochs", "3", "--threads", "1", "--checkpoint-every", "-1", "--out", "o"],
            TrainArguments.For(new TrialRun(0, 0, new TrialPoint(["0.01", "2"]), 3, "o"), new TrialSettings("cnn", null, 7, BudgetUnit.Epochs, seeded)));
    }

    [Fact]
    public async Task A_promoted_trial_continues_only_where_its_schedule_ignores_the_run_length()
    {
        foreach (var sched in new[] { "constant", "step:10:0.5", "cosine:500", "warmup:5", "warmup:5+step:20:0.1" })
            Assert.True(RungContinuation.ScheduleIgnoresLength(sched, 100, 300), sched);
        foreach (var sched in new[] { "cosine", "cosine::0.1", "warmup:5+cosine", "nonsense" })
            Assert.False(RungContinuation.ScheduleIgnoresLength(sched, 100, 300), sched);

        // The scheduler asks per promotion, leaves a checkpoint in every run but the last rung's, and points a
        // continued run at the previous rung's folder.
        var space = Space("lr=log:1e-4..1e-1:4");
        var runner = new FakeRunner(r => Curve(Lr(r), r.Budget));
        await new SweepScheduler(new GridSearch(space, 3), HalvingPlan.Create(4, 50, 200, 2, BudgetUnit.Steps), Loss, 2, "o") { CanContinue = (prev, budget) => prev.Rung == 0 }
            .RunAsync(runner);
        Assert.All(runner.Runs, r => Assert.Equal(r.Rung < 2, r.Checkpoint));
        Assert.All(runner.Runs.Where(r => r.Rung == 1), r => Assert.Equal(Path.Combine("o", $"trial-{r.Trial:D3}", "rung-0"), r.ResumeFrom));
        Assert.All(runner.Runs.Where(r => r.Rung != 1), r => Assert.Null(r.ResumeFrom));
        var args = TrainArguments.For(runner.Runs.First(r => r.Rung == 1 && r.Trial == 2), new TrialSettings("mlp", null, 1, BudgetUnit.Steps, space));
        Assert.Equal(["--resume", Path.Combine("o", "trial-002", "rung-0"), "--threads", "1", "--checkpoint-every", "100"], args.Skip(args.IndexOf("--resume")).Take(6));
    }

    [Fact]
    public void The_report_names_the_best_trial_and_lists_every_trial_and_failure()
    {
        var space = Space("lr=log:1e-4..1e-1:4", "batch=32");
        var plan = HalvingPlan.Create(4, 50, 200, 2, BudgetUnit.Steps);
        var outcome = Sweep(space, new GridSearch(space, 3), plan, new FakeRunner(r => Lr(r) < 5e-4 ? double.NaN : Curve(Lr(r), r.Budget)), parallel: 2);
        var d = new SweepDescription("disttrain sweep lr=log:1e-4..1e-1:4", "mlp", "fashion-mnist", "grid", plan, Loss, 2, 1, space);
        var md = SweepReport.Markdown("/tmp/sweep-test", d, outcome, TimeSpan.FromSeconds(3), ["metric_by_trial.png"]);
        Assert.Contains($"**Best: trial 2, lr=0.01 batch=32: test_loss {Curve(0.01, 200):F4} after 200 steps** (`trial-002/rung-2`)", md);
        Assert.Contains($"| **2** | 0.01 | 32 | 2 | 200 | **{Curve(0.01, 200):F4}** | {Curve(0.01, 50):F4} → {Curve(0.01, 100):F4} → {Curve(0.01, 200):F4} |", md);
        Assert.Contains($"| 3 | 0.1 | 32 | 1 | 100 | {Curve(0.1, 100):F4} | {Curve(0.1, 50):F4} → {Curve(0.1, 100):F4} |", md);
        Assert.Contains("| 0 | 0.0001 | 32 | 0 | 50 | failed | failed |", md);
        Assert.Contains("- trial 0, rung 0 (lr=0.0001 batch=32): diverged; log `trial-000/rung-0/train.log`", md);
        Assert.Contains("![metric_by_trial](metric_by_trial.png)", md);
    }
}
