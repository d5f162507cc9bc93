// `disttrain sweep`: hyper-parameter search over `disttrain train` options (grid, random or Bayesian), with
// early stopping by successive halving; trials run as child `disttrain train` processes, --parallel at a time,
// each in its own run folder under --out, and the sweep ends with OUT/report.md and plots (Sweep/*, docs/sweep.md).
using System.CommandLine;
using System.Globalization;
using DistTrain.Cli.Sweep;
using DistTrain.Cli.Training;

namespace DistTrain.Cli.Commands;

public sealed class SweepCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var ranges = new Argument<string[]>("PARAM=RANGE")
        {
            Description = $"Train options to search, e.g. lr=log:1e-4..1e-2 batch=64,128,256 optimizer=adam,sgd. RANGE: {ParamRange.Forms}. " +
                          "Short names: lr, batch, wd (weight decay), clip (clip norm); any other train option by its name.",
            Arity = ArgumentArity.OneOrMore,
        };
        var model = new Option<string>("--model", "-m") { Description = "Preset or model spec .json file every trial trains.", Required = true };
        var dataset = new Option<string?>("--dataset", "-d") { Description = "Dataset of every trial (default: the model's)." };
        var strategy = new Option<string>("--strategy", "-s") { Description = "grid (every combination), random (seeded draws) or bayes (Gaussian process + expected improvement).", DefaultValueFactory = _ => "bayes" };
        var trials = new Option<int?>("--trials", "-n") { Description = "Configurations to try (default 8; a grid tries all of its points)." };
        var budget = new Option<long>("--budget") { Description = "Training budget of a trial (of the last rung with --halving), in --unit.", DefaultValueFactory = _ => 1 };
        var unit = new Option<string>("--unit") { Description = "steps (optimizer steps, --max-steps) or epochs.", DefaultValueFactory = _ => "epochs" };
        var halving = new Option<long?>("--halving") { Description = "Successive halving: the first rung's budget; each rung keeps the best 1/eta with eta× the budget, up to --budget." };
        var eta = new Option<int>("--eta") { Description = "Successive halving's reduction factor.", DefaultValueFactory = _ => 3 };
        var metric = new Option<string>("--metric") { Description = $"What ranks trials: {string.Join(", ", SweepMetric.All.Select(m => m.Name))}.", DefaultValueFactory = _ => "test_accuracy" };
        var parallel = new Option<int>("--parallel", "-j") { Description = "Trials at once, each with one compute thread (default: the machine's cores).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var seed = new Option<int>("--seed") { Description = "Seed of the search (random draws, Bayesian candidates).", DefaultValueFactory = _ => 1 };
        var trialSeed = new Option<int>("--trial-seed") { Description = "--seed of every trial's training (weights, data order), unless seed is swept.", DefaultValueFactory = _ => 1 };
        var gridPoints = new Option<int>("--grid-points") { Description = "Points a grid takes on a range without :N.", DefaultValueFactory = _ => 3 };
        var output = new Option<string?>("--out", "-o") { Description = "Sweep folder: a run folder per trial, report.md, results.jsonl, plots (default: runs/sweep-<model>)." };
        var restart = new Option<bool>("--restart-rungs") { Description = "Promoted trials train again from step 0 even where they could continue from their previous rung's checkpoint." };
        var disttrain = new Option<string?>("--disttrain") { Description = "The disttrain that runs the trials: an executable or disttrain.dll (default: this one)." };
        var clusterPort = new Option<int?>("--cluster-port") { Description = "Run the trials on the cluster: start a cluster node on this port, which trial runners join " +
            "(`disttrain node --roles trial --seed-nodes akka.tcp://disttrain@HOST:PORT`); each runs one trial at a time." };
        var runners = new Option<int?>("--runners") { Description = "With --cluster-port: wait for this many trial runners before the first trial; also the default --parallel. Default 1." };
        var hostname = new Option<string?>("--hostname") { Description = "With --cluster-port: the address this node binds and advertises (default 127.0.0.1 locally)." };
        var config = new Option<string>("--config") { Description = "With --cluster-port: cluster config environment, local or multinode (cluster-config/*.hocon).", DefaultValueFactory = _ => "local" };
        var maxBytes = new Option<long>("--max-trial-bytes") { Description = "With --cluster-port: the most bytes of a trial's run folder a runner may send back.", DefaultValueFactory = _ => ClusterTrialRunner.DefaultMaxTrialBytes };
        var (tlsCert, tlsCa, insecure) = SecurityOptions.Create();
        var cmd = new Command("sweep", "Search hyper-parameters: train many configurations (grid, random or Bayesian; successive halving), report the best.")
        {
            ranges, model, dataset, strategy, trials, budget, unit, halving, eta, metric, parallel, seed, trialSeed, gridPoints, output, restart, disttrain,
            clusterPort, runners, hostname, config, maxBytes, tlsCert, tlsCa, insecure,
        };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var space = SearchSpace.Parse(r.GetValue(ranges)!, TrainOptionCatalog.FromTrainCommand());
            var budgetUnit = r.GetValue(unit) switch
            {
                "steps" => BudgetUnit.Steps,
                "epochs" => BudgetUnit.Epochs,
                var u => throw new ArgumentException($"--unit {u} is not steps or epochs."),
            };
            int points = r.GetValue(gridPoints);
            if (points < 1) throw new ArgumentException($"--grid-points must be at least 1, not {points}.");
            var search = SearchStrategies.Create(r.GetValue(strategy)!, space, (ulong)(uint)r.GetValue(seed), points);
            int n = r.GetValue(trials) ?? 8;
            if (search is GridSearch grid)
            {
                if (r.GetValue(trials) is { } t && t != grid.Points.Count)
                    throw new ArgumentException($"A grid search runs all of its {grid.Points.Count} points; drop --trials {t}, or use --strategy random.");
                n = grid.Points.Count;
            }
            var plan = r.GetValue(halving) is { } first
                ? HalvingPlan.Create(n, first, r.GetValue(budget), r.GetValue(eta), budgetUnit)
                : HalvingPlan.Single(n, r.GetValue(budget), budgetUnit);
            var sweepMetric = SweepMetric.Parse(r.GetValue(metric)!);
            var modelName = r.GetValue(model)!;
            var outDir = r.GetValue(output) ?? Path.Combine("runs", "sweep-" + Path.GetFileNameWithoutExtension(modelName));
            if (File.Exists(Path.Combine(outDir, SweepReport.ResultsFile)))
                throw new ArgumentException($"{outDir} already holds a sweep ({SweepReport.ResultsFile}); pick another --out or delete it.");
            Directory.CreateDirectory(outDir);

            var defaultSchedule = DistTrain.Nn.Models.Presets.Exists(modelName) ? DistTrain.Nn.Models.Presets.Defaults(modelName).Schedule : TrainCommand.SpecDefaults.Schedule;
            var settings = new TrialSettings(modelName, r.GetValue(dataset), r.GetValue(trialSeed), budgetUnit, space, defaultSchedule);
            var command = "disttrain " + string.Join(" ", r.Tokens.Select(t => Quote(t.Value)));
            if (r.GetValue(clusterPort) is not { } port)
            {
                var runner = new ProcessTrialRunner(settings, sweepMetric, ProcessTrialRunner.ResolveDisttrain(r.GetValue(disttrain)));
                var description = new SweepDescription(command, modelName, settings.Dataset, search.Describe(), plan, sweepMetric, r.GetValue(parallel), settings.Seed, space);
                return Run(outDir, description, search, runner, Console.Out, plan.Halving && !r.GetValue(restart) ? settings.CanContinue : null);
            }
            if (port is < 1 or > 65535) throw new ArgumentException($"--cluster-port {port} is not a TCP port (1-65535).");
            int expected = r.GetValue(runners) ?? 1;
            if (expected < 1) throw new ArgumentException($"--runners must be at least 1, not {expected}.");
            if (r.GetValue(maxBytes) < 1) throw new ArgumentException($"--max-trial-bytes must be positive, not {r.GetValue(maxBytes)}.");
            int inFlight = r.GetResult(parallel) is { Implicit: false } ? r.GetValue(parallel) : expected;
            var overrides = new DistTrain.Cluster.Configuration.ClusterOverrides { Port = port, Hostname = r.GetValue(hostname) }
                .Over(SecurityOptions.Overrides(r, tlsCert, tlsCa, insecure));
            return RunOnCluster(outDir, command, modelName, search, plan, sweepMetric, inFlight, settings, space, r.GetValue(config)!, overrides,
                r.GetValue(maxBytes), expected, plan.Halving && !r.GetValue(restart) ? settings.CanContinue : null);
        }));
        return cmd;
    }

    static int RunOnCluster(string outDir, string command, string modelName, ISearchStrategy search, HalvingPlan plan, SweepMetric metric, int parallel,
        TrialSettings settings, SearchSpace space, string env, DistTrain.Cluster.Configuration.ClusterOverrides overrides, long maxBytes, int expected,
        Func<TrialRun, long, bool>? canContinue)
    {
        var cluster = ClusterTrialRunner.StartAsync(settings, metric, env, overrides, maxBytes, line => Console.WriteLine(line)).GetAwaiter().GetResult();
        try
        {
            Console.WriteLine($"sweep node {cluster.Address} is up; start trial runners with `disttrain node --roles trial --seed-nodes {cluster.Address}`" +
                              (settings.Dataset is null ? "" : " (each with the dataset at the same path)"));
            for (int n = cluster.RunnersAsync().GetAwaiter().GetResult(); n < expected; n = cluster.RunnersAsync().GetAwaiter().GetResult())
                Thread.Sleep(250);
            var description = new SweepDescription(command, modelName, settings.Dataset, search.Describe(), plan, metric, parallel, settings.Seed, space)
            {
                Cluster = $"trial runners of the cluster at {cluster.Address} ({expected} expected at the start)",
            };
            // A promoted trial continues on whichever runner is idle from the checkpoint its previous rung sent back.
            return Run(outDir, description, search, cluster, Console.Out, canContinue);
        }
        finally { cluster.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    /// <summary>Runs the sweep with progress on <paramref name="console"/>, writes results.jsonl as runs finish and report.md at the end.</summary>
    /// <param name="canContinue">Whether a promoted trial continues from its previous rung (SweepScheduler.CanContinue); null: never.</param>
    public static int Run(string outDir, SweepDescription d, ISearchStrategy search, ITrialRunner runner, TextWriter console, Func<TrialRun, long, bool>? canContinue = null)
    {
        console.WriteLine($"sweep: {d.Space.Ranges.Count} parameters ({string.Join(", ", d.Space.Ranges)}); {d.Strategy}");
        console.WriteLine($"budget: {d.Plan}; {d.Parallel} trials at a time; runs in {Path.GetFullPath(outDir)}");
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); Console.Error.WriteLine("stopping: the running trials are killed, the report is written"); };
        Console.CancelKeyPress += onCancel;
        using var results = new StreamWriter(Path.Combine(outDir, SweepReport.ResultsFile));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var scheduler = new SweepScheduler(search, d.Plan, d.Metric, d.Parallel, outDir)
        {
            CanContinue = canContinue,
            Finished = (res, done, total) =>
            {
                results.WriteLine(SweepReport.JsonLine(res, d.Space, outDir));
                results.Flush();
                var head = string.Create(CultureInfo.InvariantCulture,
                    $"[{done}/{total}] trial {res.Run.Trial} rung {res.Run.Rung} ({res.Run.Budget} {HalvingPlan.Name(d.Plan.Unit)}{(res.Run.ResumeFrom is null ? "" : ", continued")}) {d.Space.Describe(res.Run.Point)}");
                var where = res.Outcome.Runner is null ? "" : $" on {res.Outcome.Runner}";
                console.WriteLine(res.Ok
                    ? string.Create(CultureInfo.InvariantCulture, $"{head}: {d.Metric.Name} {SweepReport.Metric(res.Outcome.Metric)} ({res.Outcome.Seconds:F1} s{where})")
                    : $"{head}: FAILED ({res.Outcome.Error}); log: {res.Outcome.LogPath ?? res.Run.RunDir}");
            },
        };
        SweepOutcome outcome;
        try { outcome = scheduler.RunAsync(runner, cancel.Token).GetAwaiter().GetResult(); }
        finally { Console.CancelKeyPress -= onCancel; }
        var report = SweepReport.Write(outDir, d, outcome, clock.Elapsed);
        if (outcome.Best is { } best)
            console.WriteLine($"best: trial {best.Run.Trial} {d.Space.Describe(best.Run.Point)}: {d.Metric.Name} {SweepReport.Metric(best.Outcome.Metric)} " +
                              $"after {best.Run.Budget} {HalvingPlan.Name(d.Plan.Unit)} ({best.Run.RunDir})");
        else console.WriteLine("no trial finished; see the failures in the report");
        console.WriteLine($"report: {Path.GetFullPath(report)}");
        return outcome.Cancelled ? 130 : outcome.Best is null ? 1 : 0;
    }

    static string Quote(string a) => a.Length > 0 && a.All(c => char.IsLetterOrDigit(c) || "-_./:=,+".Contains(c)) ? a : $"'{a}'";
}
