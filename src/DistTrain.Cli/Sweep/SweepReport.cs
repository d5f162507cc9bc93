// The sweep's written record: OUT/results.jsonl (one JSON line per run, as it finished: trial, rung, budget,
// parameters, metric or error, run folder) and OUT/report.md (the best configuration, a table of every trial with
// its metric at each rung, failures with their logs, the plots). Metrics are printed with 4 decimals.
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DistTrain.Cli.Sweep;

/// <summary>What the report says about how the sweep was run.</summary>
public sealed record SweepDescription(string Command, string Model, string? Dataset, string Strategy, HalvingPlan Plan, SweepMetric Metric,
    int Parallel, int TrialSeed, SearchSpace Space)
{
    /// <summary>Where the trials ran when not as child processes of the sweep: the cluster's trial runners.</summary>
    public string? Cluster { get; init; }
}

public static class SweepReport
{
    public const string ReportFile = "report.md", ResultsFile = "results.jsonl";
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Metric(double v) => double.IsFinite(v) ? v.ToString("F4", Inv) : "–";

    /// <summary>One results.jsonl line; paths relative to the sweep folder.</summary>
    public static string JsonLine(TrialResult r, SearchSpace space, string outDir)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteNumber("trial", r.Run.Trial);
            w.WriteNumber("rung", r.Run.Rung);
            w.WriteNumber("budget", r.Run.Budget);
            w.WriteStartObject("params");
            for (int i = 0; i < space.Ranges.Count; i++) w.WriteString(space.Ranges[i].Name, r.Run.Point.Values[i]);
            w.WriteEndObject();
            if (double.IsFinite(r.Outcome.Metric)) w.WriteNumber("metric", r.Outcome.Metric); else w.WriteNull("metric");
            if (r.Outcome.Error is null) w.WriteNull("error"); else w.WriteString("error", r.Outcome.Error);
            w.WriteNumber("seconds", Math.Round(r.Outcome.Seconds, 2));
            w.WriteString("run", Path.GetRelativePath(outDir, r.Run.RunDir));
            if (r.Outcome.Runner is not null) w.WriteString("runner", r.Outcome.Runner);
            if (r.Run.ResumeFrom is null) w.WriteNull("continued_from"); else w.WriteString("continued_from", Path.GetRelativePath(outDir, r.Run.ResumeFrom));
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Writes report.md (and the plots it shows) into <paramref name="outDir"/>; returns report.md's path.</summary>
    public static string Write(string outDir, SweepDescription d, SweepOutcome outcome, TimeSpan elapsed)
    {
        var plots = new List<string>();
        string? plotError = null;
        try { plots.AddRange(SweepPlots.Write(outDir, d.Space, d.Metric, outcome, HalvingPlan.Name(d.Plan.Unit))); }
        catch (Exception e) when (e is not OutOfMemoryException) { plotError = $"{e.GetType().Name}: {e.Message}"; }
        var path = Path.Combine(outDir, ReportFile);
        File.WriteAllText(path, Markdown(outDir, d, outcome, elapsed, plots.Select(p => Path.GetFileName(p)).ToList(), plotError));
        return path;
    }

    public static string Markdown(string outDir, SweepDescription d, SweepOutcome outcome, TimeSpan elapsed, IReadOnlyList<string> plots, string? plotError = null)
    {
        var sb = new StringBuilder();
        string unit = HalvingPlan.Name(d.Plan.Unit);
        sb.AppendLine($"# Sweep: {d.Model} on {d.Dataset ?? "its default dataset"}");
        sb.AppendLine();
        sb.AppendLine($"    {d.Command}");
        sb.AppendLine();
        sb.AppendLine($"- search: {d.Strategy}");
        sb.AppendLine($"- space: {string.Join(", ", d.Space.Ranges)}");
        sb.AppendLine($"- budget: {d.Plan}");
        if (d.Plan.Halving)
        {
            int continued = outcome.Results.Count(r => r.Run.ResumeFrom is not null), promoted = outcome.Results.Count(r => r.Run.Rung > 0);
            sb.AppendLine($"- promoted runs: {continued} of {promoted} continued from their previous rung's checkpoint, the others trained again from step 0 " +
                          "(a schedule that depends on the run's length, such as a bare cosine, or --restart-rungs)");
        }
        sb.AppendLine($"- metric: {d.Metric}, from each run's metrics.jsonl (last epoch record)");
        sb.AppendLine(string.Create(Inv, $"- {outcome.Results.Count} runs, {d.Parallel} at a time, one compute thread each, training seed {d.TrialSeed}; {elapsed.TotalMinutes:F1} min{(outcome.Cancelled ? "; **cancelled before the end**" : "")}"));
        if (d.Cluster is not null)
            sb.AppendLine($"- ran on {d.Cluster}; a promoted trial runs on whichever runner is idle, from the checkpoint its previous rung sent back");
        sb.AppendLine();
        var best = outcome.Best;
        if (best is null) sb.AppendLine("**No trial finished**; see the failures below.");
        else
            sb.AppendLine($"**Best: trial {best.Run.Trial}, {d.Space.Describe(best.Run.Point)}: {d.Metric.Name} {Metric(best.Outcome.Metric)} " +
                          $"after {best.Run.Budget} {unit}** (`{Path.GetRelativePath(outDir, best.Run.RunDir)}`)");
        sb.AppendLine();

        // One row per trial, ranked: furthest rung first, then by the metric there.
        var trials = outcome.Results.GroupBy(r => r.Run.Trial).Select(g => g.OrderBy(r => r.Run.Rung).ToList())
            .OrderByDescending(rs => rs[^1].Run.Rung).ThenBy(rs => d.Metric.Score(rs[^1].Outcome.Metric)).ThenBy(rs => rs[0].Run.Trial).ToList();
        sb.Append("| trial | ");
        foreach (var r in d.Space.Ranges) sb.Append(r.Name).Append(" | ");
        bool runners = outcome.Results.Any(r => r.Outcome.Runner is not null);
        sb.AppendLine($"rung | budget ({unit}) | {d.Metric.Name} |" + (d.Plan.Halving ? $" {d.Metric.Name} per rung |" : "") + " seconds |" + (runners ? " runner |" : "") + " run |");
        sb.Append("|---:|");
        foreach (var _ in d.Space.Ranges) sb.Append("---|");
        sb.AppendLine("---:|---:|---:|" + (d.Plan.Halving ? "---|" : "") + "---:|" + (runners ? "---|" : "") + "---|");
        foreach (var rs in trials)
        {
            var last = rs[^1];
            bool isBest = best is not null && last.Run.Trial == best.Run.Trial && last.Run.Rung == best.Run.Rung;
            string B(string s) => isBest ? $"**{s}**" : s;
            sb.Append($"| {B(last.Run.Trial.ToString(Inv))} | ");
            foreach (var v in last.Run.Point.Values) sb.Append(v).Append(" | ");
            sb.Append($"{last.Run.Rung} | {last.Run.Budget} | {B(last.Ok ? Metric(last.Outcome.Metric) : "failed")} |");
            if (d.Plan.Halving) sb.Append(' ').Append(string.Join(" → ", rs.Select(r => r.Ok ? Metric(r.Outcome.Metric) : "failed"))).Append(" |");
            sb.Append(string.Create(Inv, $" {rs.Sum(r => r.Outcome.Seconds):F1} |"));
            if (runners) sb.Append(' ').Append(string.Join(" → ", rs.Select(r => r.Outcome.Runner ?? "–"))).Append(" |");
            sb.AppendLine($" `{Path.GetRelativePath(outDir, last.Run.RunDir)}` |");
        }
        var failed = outcome.Results.Where(r => !r.Ok).ToList();
        if (failed.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Failed runs");
            foreach (var f in failed)
                sb.AppendLine($"- trial {f.Run.Trial}, rung {f.Run.Rung} ({d.Space.Describe(f.Run.Point)}): {f.Outcome.Error}" +
                              (f.Outcome.LogPath is null ? "" : $"; log `{Path.GetRelativePath(outDir, f.Outcome.LogPath)}`"));
        }
        sb.AppendLine();
        foreach (var p in plots) sb.AppendLine($"![{Path.GetFileNameWithoutExtension(p)}]({p})");
        if (plotError is not null) sb.AppendLine($"Plots not drawn: {plotError}.");
        sb.AppendLine();
        sb.AppendLine($"Every run's folder (model, metrics.jsonl, plots, {ProcessTrialRunner.LogFile}) is kept; {ResultsFile} lists each run as it finished.");
        return sb.ToString();
    }
}
