// The write-up of `disttrain scale`: OUT/report.md (what ran, on which machine and network, one table row per run
// with throughput, speed-up and efficiency within its series, the mean step and one worker's share of it, bytes per
// step and per sample, the link-bound ideal where the links are shaped, the time to a target accuracy where asked),
// OUT/results.json with the same numbers, and the plots (ScalePlots).
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DistTrain.Cli.Scale;

/// <summary>One finished (or failed) run with what the report derives from it.</summary>
public sealed record ScaleResult(ScalePoint Point, int Batch, RunSummary? Summary, string? Error)
{
    public double SpeedUp { get; init; } = double.NaN;
    public double Efficiency { get; init; } = double.NaN;
    /// <summary>Samples/s the shaped links allow (LinkModel), NaN without --bandwidth or outside sync mode.</summary>
    public double LinkBound { get; init; } = double.NaN;
    public string? LinkBottleneck { get; init; }
    /// <summary>CPU ms per step of the coordinator, the ps processes and the workers (ClusterLauncher), or null.</summary>
    public RunCpu? Cpu { get; init; }
}

/// <summary>What the report's header says about the experiment.</summary>
public sealed record ScaleDescription(string Command, string Model, string? Dataset, long Parameters, int Steps, int Warmup, string Network,
    double? BytesPerSecond, string Simulate, double TargetAccuracy)
{
    /// <summary>--epochs, when the runs end by epochs (or --steps, whichever comes first); null = by --steps.</summary>
    public int? Epochs { get; init; }
}

public static class ScaleReport
{
    public const string ReportFile = "report.md", ResultsFile = "results.json";

    /// <summary>Speed-up and efficiency against the run with the fewest workers of the same series, and the link-bound ideal.</summary>
    public static IReadOnlyList<ScaleResult> Derive(IReadOnlyList<ScaleResult> runs, long parameters, double? bytesPerSecond, double latencySeconds = 0)
    {
        var output = new List<ScaleResult>();
        foreach (var r in runs)
        {
            var x = r;
            if (r.Summary is { } s)
            {
                var baseRun = runs.Where(o => o.Point.Series == r.Point.Series && o.Summary is not null).MinBy(o => o.Point.Workers)!;
                double speedUp = s.SamplesPerSecond / baseRun.Summary!.SamplesPerSecond;
                x = x with { SpeedUp = speedUp, Efficiency = speedUp / ((double)r.Point.Workers / baseRun.Point.Workers) };
                if (bytesPerSecond is { } rate && r.Point.Mode == "sync")
                {
                    var (sec, what) = LinkModel.StepSeconds(r.Point.Workers, r.Point.ShardHosts, s.BytesPerStep, 4.0 * parameters, rate, latencySeconds);
                    x = x with { LinkBound = LinkModel.Throughput(r.Batch, sec), LinkBottleneck = what };
                }
            }
            output.Add(x);
        }
        return output;
    }

    public static string Markdown(ScaleDescription d, IReadOnlyList<ScaleResult> runs, IReadOnlyList<string> plots, string machine)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# Scaling report").AppendLine();
        sb.AppendLine($"- command: `{d.Command}`");
        sb.AppendLine($"- machine: {machine}");
        sb.AppendLine($"- model: {d.Model} ({d.Parameters.ToString("N0", c)} parameters), dataset: {d.Dataset ?? "the model's"}");
        sb.AppendLine(d.Epochs is { } epochs
            ? $"- each run ends after {epochs} epochs or {d.Steps} steps, whichever comes first; the table is over steps {d.Warmup} and later (the first {d.Warmup} warm the JIT and the connections up)"
            : $"- {d.Steps} steps per run; the table is over steps {d.Warmup}..{d.Steps - 1} (the first {d.Warmup} warm the JIT and the connections up)");
        sb.AppendLine($"- network: {d.Network}");
        sb.AppendLine($"- compute: {d.Simulate}");
        sb.AppendLine();
        bool link = runs.Any(r => double.IsFinite(r.LinkBound)), target = double.IsFinite(d.TargetAccuracy);
        bool accuracy = runs.Any(r => r.Summary is { } s && double.IsFinite(s.FinalTestAccuracy));
        sb.Append("| run | workers | ps | mode | micro-batch | compression | batch | samples/s | speed-up | efficiency | step ms | compute ms | communication ms | wait ms | other ms | MB/step | bytes/sample |");
        if (link) sb.Append(" link-bound samples/s | of link-bound |");
        if (target) sb.Append(string.Create(c, $" time to {100 * d.TargetAccuracy:0.##}% (s) |"));
        if (accuracy) sb.Append(" last test accuracy |");
        sb.AppendLine();
        sb.Append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        if (link) sb.Append("---|---|");
        if (target) sb.Append("---|");
        if (accuracy) sb.Append("---|");
        sb.AppendLine();
        foreach (var r in runs)
        {
            var p = r.Point;
            sb.Append(string.Create(c, $"| {p.Name} | {p.Workers} | {p.PsNodes} | {p.Mode} | {p.MicroBatch} | {p.Compression} | {r.Batch} |"));
            if (r.Summary is not { } s)
            {
                sb.Append($" failed: {r.Error?.Replace("|", "/")} |");
                sb.AppendLine();
                continue;
            }
            sb.Append(string.Create(c, $" {s.SamplesPerSecond:F1} | {r.SpeedUp:F2} | {100 * r.Efficiency:F0}% | {s.StepMs:F1} | {s.ComputeMs:F1} | {s.CommunicationMs:F1} | {s.WaitMs:F1} | {s.OtherMs:F1} | {s.BytesPerStep / 1e6:F2} | {s.BytesPerSample:F0} |"));
            if (link) sb.Append(double.IsFinite(r.LinkBound) ? string.Create(c, $" {r.LinkBound:F1} | {100 * s.SamplesPerSecond / r.LinkBound:F0}% |") : " – | – |");
            if (target) sb.Append(double.IsFinite(s.TimeToTargetSeconds) ? string.Create(c, $" {s.TimeToTargetSeconds:F1} |") : " not reached |");
            if (accuracy) sb.Append(double.IsFinite(s.FinalTestAccuracy) ? string.Create(c, $" {100 * s.FinalTestAccuracy:F2}% |") : " – |");
            sb.AppendLine();
        }
        sb.AppendLine();
        sb.AppendLine("samples/s: samples over the summed wall time of the table's steps. speed-up and efficiency: against the run with the fewest " +
                      "workers of the same ps / mode / micro-batch / compression. compute, communication and wait: one worker's share of a step " +
                      "(the step's sums over its micro-batches divided by the workers); other: the rest of the step (the barrier, the shards' sum " +
                      "and update, the coordinator). MB/step and bytes/sample: what the workers sent (gradients as encoded, and statistics)." +
                      (runs.Any(r => r.Point.Mode == "local-sgd") ? " local-sgd: metrics.jsonl has a line per round, so a row's step is a round (H local steps and the averaging)." : "") +
                      (accuracy ? " last test accuracy: the run's last epoch record (an epoch's end, or the end of the run); meaningless with simulated compute." : ""));
        if (link)
            sb.AppendLine().AppendLine("link-bound: the samples/s the shaped links allow a sync step: per step each worker sends its gradients and " +
                                       "receives the whole parameter vector (4 bytes a parameter), each shard host receives its range of every gradient " +
                                       "and pushes its range to every worker; the busiest direction of the busiest host at the link rate bounds the step " +
                                       "(with --latency, plus two one-way delays: gradients to the shards, parameters back). " +
                                       "Bottleneck per run: " + string.Join("; ", runs.Where(r => r.LinkBottleneck is not null).Select(r => $"{r.Point.Name}: {r.LinkBottleneck}")) + ".");
        if (runs.Any(r => r.Cpu is not null && r.Summary is not null))
        {
            sb.AppendLine().AppendLine("## Where the CPU went").AppendLine();
            sb.AppendLine("CPU milliseconds per step of each process (user + system, over the measured steps): the processes of every emulated host share " +
                          "this machine's cores, so when their sum nears the cores × the step time the machine, not the system, bounds the run.").AppendLine();
            sb.AppendLine("| run | coordinator | ps, mean | ps, max | worker, mean | all processes | of the machine's cores |");
            sb.AppendLine("|---|---|---|---|---|---|---|");
            foreach (var r in runs)
            {
                if (r.Cpu is not { } cpu || r.Summary is not { } s) continue;
                double all = cpu.CoordinatorMs + (double.IsFinite(cpu.PsMeanMs) ? cpu.PsMeanMs * r.Point.PsNodes : 0) + cpu.WorkerMeanMs * r.Point.Workers;
                sb.AppendLine(string.Create(c, $"| {r.Point.Name} | {cpu.CoordinatorMs:F1} | {Ms(cpu.PsMeanMs)} | {Ms(cpu.PsMaxMs)} | {cpu.WorkerMeanMs:F1} | {all:F1} | {100 * all / (Environment.ProcessorCount * s.StepMs):F0}% |"));
            }
        }
        if (plots.Count > 0)
        {
            sb.AppendLine();
            foreach (var plot in plots) sb.AppendLine($"![{Path.GetFileNameWithoutExtension(plot)}]({Path.GetFileName(plot)})");
        }
        return sb.ToString();
    }

    public static string Json(IReadOnlyList<ScaleResult> runs) => JsonSerializer.Serialize(runs.Select(r => new
    {
        name = r.Point.Name, workers = r.Point.Workers, ps_nodes = r.Point.PsNodes, mode = r.Point.Mode, micro_batch = r.Point.MicroBatch,
        compression = r.Point.Compression, batch = r.Batch, error = r.Error,
        samples_per_second = r.Summary?.SamplesPerSecond, speed_up = Finite(r.SpeedUp), efficiency = Finite(r.Efficiency),
        step_ms = r.Summary?.StepMs, compute_ms = r.Summary?.ComputeMs, communication_ms = r.Summary?.CommunicationMs, wait_ms = r.Summary?.WaitMs,
        other_ms = r.Summary?.OtherMs, bytes_per_step = r.Summary?.BytesPerStep, bytes_per_sample = r.Summary?.BytesPerSample, steps = r.Summary?.Steps,
        link_bound_samples_per_second = Finite(r.LinkBound), link_bottleneck = r.LinkBottleneck,
        time_to_target_s = r.Summary is { } s ? Finite(s.TimeToTargetSeconds) : null,
        last_test_accuracy = r.Summary is { } a ? Finite(a.FinalTestAccuracy) : null,
        cpu_ms_per_step = r.Cpu is { } cpu ? new { coordinator = cpu.CoordinatorMs, ps_mean = Finite(cpu.PsMeanMs), ps_max = Finite(cpu.PsMaxMs), worker_mean = cpu.WorkerMeanMs, steps = cpu.Steps } : null,
    }), new JsonSerializerOptions { WriteIndented = true });

    private static string Ms(double v) => double.IsFinite(v) ? v.ToString("F1", CultureInfo.InvariantCulture) : "–";

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    /// <summary>lscpu's model name and the core count, as every benchmark figure states it.</summary>
    public static string Machine()
    {
        string model = "unknown CPU";
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) model = line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{model}, {Environment.ProcessorCount} cores";
    }
}
