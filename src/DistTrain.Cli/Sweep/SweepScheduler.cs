// Runs a sweep: proposes configurations, runs them `parallel` at a time through an ITrialRunner (child
// `disttrain train` processes, or a function in tests), rung by rung of the halving plan, and reports each as it
// finishes. Everything that decides what runs is a function of finished results in trial order, never of timing:
// trial i of the first rung is proposed from exactly the trials before i − parallel + 1 (it waits for them), and
// promotions wait for the whole rung. So one --parallel gives the same sweep however fast each slot is.
namespace DistTrain.Cli.Sweep;

/// <summary>
/// One training run of a sweep: trial <see cref="Trial"/> with <see cref="Budget"/> at rung <see cref="Rung"/>; it continues from
/// the checkpoint in <see cref="ResumeFrom"/> (its previous rung) when set, and leaves one at its end when <see cref="Checkpoint"/>.
/// </summary>
public sealed record TrialRun(int Trial, int Rung, TrialPoint Point, long Budget, string RunDir, string? ResumeFrom = null, bool Checkpoint = false);

/// <summary>What a run gave: its metric, or an error and where its log is; <see cref="Runner"/>: the cluster trial runner that
/// trained it (null: a child process of the sweep).</summary>
public sealed record TrialOutcome(double Metric, string? Error, string? LogPath, double Seconds, string? Runner = null)
{
    public static TrialOutcome Failed(string error, string? log, double seconds) => new(double.NaN, error, log, seconds);
}

public sealed record TrialResult(TrialRun Run, TrialOutcome Outcome)
{
    public bool Ok => Outcome.Error is null && double.IsFinite(Outcome.Metric);
}

public interface ITrialRunner
{
    /// <summary>Trains <paramref name="run"/>; a failure is returned as an outcome with an error, not thrown.</summary>
    Task<TrialOutcome> RunAsync(TrialRun run, CancellationToken cancel);
}

/// <summary>Every run in the order it finished, and the best trial of the highest rung that has one.</summary>
public sealed record SweepOutcome(IReadOnlyList<TrialResult> Results, TrialResult? Best, bool Cancelled);

public sealed class SweepScheduler(ISearchStrategy strategy, HalvingPlan plan, SweepMetric metric, int parallel, string outDir)
{
    /// <summary>Called as each run finishes, with the number of runs finished and the most the plan can run.</summary>
    public Action<TrialResult, int, int>? Finished { get; init; }

    /// <summary>
    /// Whether a promoted trial continues from its previous rung's run (given that run and the new budget) instead of
    /// training again from step 0. Null: always from step 0, and no run keeps a checkpoint for it.
    /// </summary>
    public Func<TrialRun, long, bool>? CanContinue { get; init; }

    public int Parallel { get; } = parallel >= 1 ? parallel : throw new ArgumentException($"--parallel must be at least 1, not {parallel}.");
    public int PlannedRuns => plan.Rungs.Sum(r => r.Trials);

    public string RunDir(int trial, int rung) => plan.Halving
        ? Path.Combine(outDir, $"trial-{trial:D3}", $"rung-{rung}")
        : Path.Combine(outDir, $"trial-{trial:D3}");

    public async Task<SweepOutcome> RunAsync(ITrialRunner runner, CancellationToken cancel = default)
    {
        var all = new List<TrialResult>();
        var points = new Dictionary<int, TrialPoint>();
        var byRung = new List<Dictionary<int, TrialResult>>();
        IReadOnlyList<int> survivors = [];
        foreach (var rung in plan.Rungs)
        {
            var done = new Dictionary<int, TrialResult>();
            byRung.Add(done);
            var running = new Dictionary<Task<TrialResult>, int>();
            int launched = 0, count = rung.Index == 0 ? rung.Trials : survivors.Count;
            while (launched < count || running.Count > 0)
            {
                while (!cancel.IsCancellationRequested && running.Count < Parallel && launched < count)
                {
                    int trial;
                    if (rung.Index == 0)
                    {
                        trial = launched;
                        // An adaptive strategy sees exactly the trials before trial − parallel + 1: wait until they are in.
                        int seen = strategy.Adaptive ? Math.Max(0, trial - Parallel + 1) : 0;
                        if (Enumerable.Range(0, seen).Any(j => !done.ContainsKey(j))) break;
                        var finished = Enumerable.Range(0, seen).Select(j => new Observation(points[j], metric.Score(done[j].Outcome.Metric))).ToList();
                        var pending = Enumerable.Range(seen, trial - seen).Select(j => points[j]).ToList();
                        points[trial] = strategy.Propose(trial, finished, pending);
                    }
                    else trial = survivors[launched];
                    var prev = rung.Index == 0 ? null : byRung[rung.Index - 1][trial].Run;
                    var run = new TrialRun(trial, rung.Index, points[trial], rung.Budget, RunDir(trial, rung.Index),
                        ResumeFrom: prev is not null && Continues(prev, rung.Budget) ? prev.RunDir : null,
                        Checkpoint: CanContinue is not null && rung.Index + 1 < plan.Rungs.Count);
                    running.Add(RunOne(runner, run, cancel), trial);
                    launched++;
                }
                if (running.Count == 0) break; // cancelled before anything else started
                var t = await Task.WhenAny(running.Keys).ConfigureAwait(false);
                running.Remove(t);
                var result = await t.ConfigureAwait(false);
                done[result.Run.Trial] = result;
                all.Add(result);
                Finished?.Invoke(result, all.Count, PlannedRuns);
            }
            if (cancel.IsCancellationRequested) return new SweepOutcome(all, Best(byRung), true);
            if (rung.Index + 1 < plan.Rungs.Count)
            {
                survivors = HalvingPlan.Promote(done.Values.Select(r => (r.Run.Trial, metric.Score(r.Outcome.Metric))), plan.Rungs[rung.Index + 1].Trials);
                if (survivors.Count == 0) break; // every trial of this rung failed
            }
        }
        return new SweepOutcome(all, Best(byRung), false);
    }

    /// <summary>CanContinue, where a question it cannot answer (an unreadable run folder) means "train again from step 0".</summary>
    bool Continues(TrialRun prev, long budget)
    {
        if (CanContinue is null) return false;
        try { return CanContinue(prev, budget); }
        catch (Exception e) when (e is IOException or ArgumentException or FormatException or UnauthorizedAccessException) { return false; }
    }

    TrialResult? Best(List<Dictionary<int, TrialResult>> byRung)
    {
        for (int k = byRung.Count - 1; k >= 0; k--)
        {
            var best = byRung[k].Values.Where(r => r.Ok).OrderBy(r => metric.Score(r.Outcome.Metric)).ThenBy(r => r.Run.Trial).FirstOrDefault();
            if (best is not null) return best;
        }
        return null;
    }

    static async Task<TrialResult> RunOne(ITrialRunner runner, TrialRun run, CancellationToken cancel)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        try { return new TrialResult(run, await runner.RunAsync(run, cancel).ConfigureAwait(false)); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new TrialResult(run, TrialOutcome.Failed($"{e.GetType().Name}: {e.Message}", null, started.Elapsed.TotalSeconds));
        }
    }
}
