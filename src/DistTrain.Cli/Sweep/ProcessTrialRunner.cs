// Runs a sweep's trial as a child `disttrain train` process (the CLI is the stable interface to training), with
// one compute thread, its output in RUN/train.log, and reads the trial's metric from RUN/metrics.jsonl.
// The command line is a pure function of the run (TrainArguments), so the same trial trains the same in any slot.
using System.Diagnostics;
using DistTrain.Cli.Plotting;

namespace DistTrain.Cli.Sweep;

/// <summary>What every trial shares: the model, the dataset, the training seed (unless swept), the budget's unit, and the
/// learning-rate schedule trials use unless it is swept (the preset's).</summary>
public sealed record TrialSettings(string Model, string? Dataset, int Seed, BudgetUnit Unit, SearchSpace Space, string DefaultSchedule = "constant")
{
    /// <summary>The --schedule trial <paramref name="p"/> trains with.</summary>
    public string ScheduleOf(TrialPoint p)
    {
        for (int i = 0; i < Space.Ranges.Count; i++) if (Space.Ranges[i].Option == "--schedule") return p.Values[i];
        return DefaultSchedule;
    }

    /// <summary>
    /// Whether a promoted trial can go on from <paramref name="prev"/>'s checkpoint to <paramref name="budget"/> and end with
    /// exactly the run a fresh one of that budget gives: it left a checkpoint, and its schedule over the steps already
    /// taken does not depend on the run's length (a bare cosine does; constant, step and cosine:T do not).
    /// </summary>
    public bool CanContinue(TrialRun prev, long budget)
    {
        if (!prev.Checkpoint || DistTrain.Training.Checkpoints.CheckpointSeries.List(prev.RunDir).Count == 0) return false;
        long done = prev.Budget, total = budget;
        if (Unit == BudgetUnit.Epochs)
        {
            var steps = RunMetrics.Load(prev.RunDir).Steps;
            if (steps.Count == 0) return false;
            done = steps[^1].Step + 1;
            total = done / prev.Budget * budget;
        }
        return RungContinuation.ScheduleIgnoresLength(ScheduleOf(prev.Point), done, total);
    }
}

/// <summary>When a promoted trial may continue from a checkpoint instead of starting again.</summary>
public static class RungContinuation
{
    /// <summary>True when the schedule gives the same learning rate for updates 1..<paramref name="done"/> whether the run
    /// lasts <paramref name="done"/> or <paramref name="total"/> steps.</summary>
    public static bool ScheduleIgnoresLength(string schedule, long done, long total)
    {
        try
        {
            var shorter = Nn.Optimizers.LrSchedule.Parse(schedule, 1f, done);
            var longer = Nn.Optimizers.LrSchedule.Parse(schedule, 1f, total);
            for (long t = 1; t <= done; t++)
                if (shorter.At(t) != longer.At(t)) return false;
            return true;
        }
        catch (ArgumentException) { return false; }
    }
}

public static class TrainArguments
{
    /// <summary>A steps budget leaves the epoch count high enough never to stop a run first.</summary>
    public const int EpochsForStepBudget = 1_000_000;

    /// <summary>The `disttrain train` arguments of <paramref name="run"/>.</summary>
    public static List<string> For(TrialRun run, TrialSettings s)
    {
        var args = new List<string> { "train" };
        args.AddRange(Options(run, s));
        if (run.ResumeFrom is not null) args.AddRange(["--resume", run.ResumeFrom]);
        // One compute thread per trial (trials are the parallelism). The final model is kept; a checkpoint only at the end
        // of a run a promotion may continue from (a steps budget is a multiple of itself; an epochs budget ends an epoch).
        args.AddRange(["--threads", "1", "--checkpoint-every", CheckpointEvery(run, s), "--out", run.RunDir]);
        return args;
    }

    /// <summary>--checkpoint-every of <paramref name="run"/>: never (-1), or at its end when a promotion may continue from it.</summary>
    public static string CheckpointEvery(TrialRun run, TrialSettings s) =>
        !run.Checkpoint ? "-1" : s.Unit == BudgetUnit.Steps ? run.Budget.ToString(System.Globalization.CultureInfo.InvariantCulture) : "0";

    /// <summary>What decides <paramref name="run"/>'s result: the model, dataset, swept values, seed and budget (no path, no
    /// thread count). A trial runner on another machine gets exactly these (TrialRequestCheck).</summary>
    public static List<string> Options(TrialRun run, TrialSettings s)
    {
        var args = new List<string> { "--model", s.Model };
        if (s.Dataset is not null) args.AddRange(["--dataset", s.Dataset]);
        for (int i = 0; i < s.Space.Ranges.Count; i++) args.AddRange([s.Space.Ranges[i].Option, run.Point.Values[i]]);
        if (!s.Space.Ranges.Any(r => r.Option == "--seed")) args.AddRange(["--seed", s.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        string budget = run.Budget.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (s.Unit == BudgetUnit.Steps) args.AddRange(["--max-steps", budget, "--epochs", EpochsForStepBudget.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        else args.AddRange(["--epochs", budget]);
        return args;
    }
}

public sealed class ProcessTrialRunner(TrialSettings settings, SweepMetric metric, IReadOnlyList<string> disttrain) : ITrialRunner
{
    public const string LogFile = "train.log";

    /// <summary>
    /// How to start `disttrain`: this process's own apphost, or `dotnet disttrain.dll` when this process runs under the
    /// dotnet host (or inside a test host, where the CLI's assembly sits beside its runtimeconfig).
    /// </summary>
    public static IReadOnlyList<string> ResolveDisttrain(string? given = null)
    {
        var self = Environment.ProcessPath;
        var host = self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
        if (given is not null)
        {
            if (!File.Exists(given)) throw new ArgumentException($"--disttrain {given} does not exist; give the disttrain executable or disttrain.dll.");
            return given.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? [host, Path.GetFullPath(given)] : [Path.GetFullPath(given)];
        }
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "disttrain") return [self];
        var dll = typeof(Program).Assembly.Location;
        if (!File.Exists(Path.ChangeExtension(dll, ".runtimeconfig.json")))
            throw new InvalidOperationException($"Cannot find a runnable disttrain beside {dll} to start trials with; run the sweep from the built CLI (`dotnet {dll}`).");
        return [host, dll];
    }

    public async Task<TrialOutcome> RunAsync(TrialRun run, CancellationToken cancel)
    {
        Directory.CreateDirectory(run.RunDir);
        var log = Path.Combine(run.RunDir, LogFile);
        var psi = new ProcessStartInfo(disttrain[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in disttrain.Skip(1).Concat(TrainArguments.For(run, settings))) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        string lastError = "";
        await using (var writer = new StreamWriter(log) { AutoFlush = false })
        {
            writer.WriteLine("$ " + string.Join(" ", psi.ArgumentList.Prepend(psi.FileName).Select(Quote)));
            using var p = new Process { StartInfo = psi };
            var gate = new object();
            p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (gate) writer.WriteLine(e.Data); };
            p.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (gate) { writer.WriteLine(e.Data); if (e.Data.Trim().Length > 0) lastError = e.Data.Trim(); }
            };
            p.Start();
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            try { await p.WaitForExitAsync(cancel).ConfigureAwait(false); }
            catch (OperationCanceledException)
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                await p.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                return TrialOutcome.Failed("cancelled", log, clock.Elapsed.TotalSeconds);
            }
            p.WaitForExit(); // drains the redirected streams
            if (p.ExitCode != 0)
            {
                lock (gate) writer.WriteLine($"[sweep] exit code {p.ExitCode}");
                return TrialOutcome.Failed($"exit code {p.ExitCode}{(lastError.Length > 0 ? ": " + lastError : "")}", log, clock.Elapsed.TotalSeconds);
            }
        }
        return Read(run.RunDir, metric, log, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The metric of a finished run: its last epoch record (a run stopped by --max-steps evaluates at its last step).</summary>
    public static TrialOutcome Read(string runDir, SweepMetric metric, string? log, double seconds)
    {
        RunMetrics m;
        try { m = RunMetrics.Load(runDir); }
        catch (Exception e) when (e is ArgumentException or FormatException or IOException) { return TrialOutcome.Failed(e.Message, log, seconds); }
        if (m.Epochs.Count == 0) return TrialOutcome.Failed($"{m.Path} has no epoch record", log, seconds);
        double v = metric.Read(m.Epochs[^1]);
        return double.IsFinite(v) ? new TrialOutcome(v, null, log, seconds)
            : TrialOutcome.Failed($"{m.Path} has no {metric.Name} (a dataset without a test split, or a regression model?); pick another --metric", log, seconds);
    }

    static string Quote(string a) => a.Length > 0 && a.All(c => char.IsLetterOrDigit(c) || "-_./:=,+".Contains(c)) ? a : $"'{a.Replace("'", "'\\''")}'";
}
