// What one run of `disttrain scale` measured, read back from its metrics.jsonl (docs/metrics.md): the steps after the
// warm-up give the throughput (samples over the sum of step wall times, as scripts/scaling.sh computes it), the mean
// step time and its per-worker breakdown (compute, communication and wait are summed over a step's micro-batches by
// the workers that ran them; divided by the worker count they are one worker's share), bytes per step and per sample;
// the epoch records give the time to a target test accuracy.
using System.Text.Json;

namespace DistTrain.Cli.Scale;

public sealed record RunSummary(int Steps, double Samples, double SamplesPerSecond, double StepMs, double ComputeMs, double CommunicationMs,
    double WaitMs, double BytesPerStep, double BytesPerSample, double TimeToTargetSeconds, double FinalTestAccuracy)
{
    /// <summary>Of the mean step: what is not one worker's compute, communication or wait (the barrier, the coordinator, the shards).</summary>
    public double OtherMs => Math.Max(0, StepMs - ComputeMs - CommunicationMs - WaitMs);

    /// <summary>Reads RUN/metrics.jsonl. Steps below <paramref name="warmup"/> are left out (JIT, connections, first pushes).
    /// <paramref name="targetAccuracy"/> (0..1, or NaN): seconds of training until an epoch record's test accuracy reaches it.</summary>
    public static RunSummary Read(string runDir, int workers, int warmup, double targetAccuracy = double.NaN)
    {
        var file = Path.Combine(runDir, "metrics.jsonl");
        if (!File.Exists(file)) throw new ArgumentException($"{runDir} has no metrics.jsonl: the run wrote no step (see its logs in {runDir}).");
        int n = 0;
        double samples = 0, seconds = 0, compute = 0, comm = 0, wait = 0, bytes = 0;
        double elapsed = 0, toTarget = double.NaN, lastAccuracy = double.NaN;
        foreach (var line in File.ReadLines(file))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            switch (r.GetProperty("kind").GetString())
            {
                case "step" when Num(r, "step") >= warmup && double.IsFinite(Num(r, "step_s")):
                    n++;
                    samples += Num(r, "samples");
                    seconds += Num(r, "step_s");
                    compute += Num(r, "compute_ms");
                    comm += Num(r, "communication_ms");
                    wait += Num(r, "wait_ms");
                    bytes += Num(r, "bytes_sent");
                    break;
                case "epoch":
                    double epochSeconds = Num(r, "seconds");
                    if (double.IsFinite(epochSeconds)) elapsed += epochSeconds;
                    double acc = Num(r, "test_accuracy");
                    if (double.IsFinite(acc)) lastAccuracy = acc;
                    if (double.IsNaN(toTarget) && double.IsFinite(acc) && acc >= targetAccuracy) toTarget = elapsed;
                    break;
            }
        }
        if (n == 0) throw new ArgumentException($"{file} has no step at or after the warm-up (step {warmup}); run more --steps or lower --warmup.");
        double w = Math.Max(1, workers);
        return new RunSummary(n, samples, samples / seconds, 1000 * seconds / n, compute / n / w, comm / n / w, wait / n / w,
            bytes / n, bytes / samples, toTarget, lastAccuracy);
    }

    private static double Num(JsonElement r, string field) =>
        r.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
}

/// <summary>
/// The throughput a sync step's traffic allows when every host has a full-duplex link of one rate (tbf on both ends
/// of its veth): per step each worker sends its micro-batches' gradients and receives the whole parameter vector; each
/// shard host receives its range of every micro-batch's gradient and pushes its range to every worker. The busiest
/// direction of the busiest host bounds the step.
/// </summary>
public static class LinkModel
{
    /// <param name="gradientBytesPerStep">What all workers sent in a step (bytes_sent: gradients and statistics).</param>
    /// <param name="parameterBytes">The float32 parameter vector a worker receives per step.</param>
    /// <param name="bytesPerSecond">Each host's link rate, each direction.</param>
    /// <param name="latencySeconds">One-way delay between hosts (--latency): a sync step waits for its gradients to reach the
    /// shards and for the new parameters to come back, two trips that no pipelining hides.</param>
    /// <returns>Seconds per step that the links need, and which link it is.</returns>
    public static (double Seconds, string Bottleneck) StepSeconds(int workers, int shardHosts, double gradientBytesPerStep, double parameterBytes, double bytesPerSecond,
        double latencySeconds = 0)
    {
        (double bytes, string what)[] links =
        [
            (gradientBytesPerStep / shardHosts, "shard host in (gradients)"),
            ((double)workers * parameterBytes / shardHosts, "shard host out (parameter pushes)"),
            (gradientBytesPerStep / workers, "worker out (gradients)"),
            (parameterBytes, "worker in (parameters)"),
        ];
        var max = links.MaxBy(l => l.bytes);
        return latencySeconds > 0 ? (max.bytes / bytesPerSecond + 2 * latencySeconds, max.what + " + 2 × latency") : (max.bytes / bytesPerSecond, max.what);
    }

    /// <summary>Samples per second the links allow for a global batch of <paramref name="batch"/>.</summary>
    public static double Throughput(int batch, double stepSeconds) => batch / stepSeconds;
}
