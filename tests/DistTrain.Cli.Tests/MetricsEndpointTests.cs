// `disttrain train --metrics-port N` scraped during real runs (a coordinator with a worker process, and one process):
// the run's counters are served on 127.0.0.1, they grow between two scrapes, and they agree with each other
// (samples = batch × steps; a worker's micro-batches = 4 a step with micro-batch 8 of 32).
using System.Globalization;
using System.Text.RegularExpressions;
using DistTrain.Cluster.Tests.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class MetricsEndpointTests(ITestOutputHelper output) : IDisposable
{
    private readonly ClusterProcesses _cluster = new(output);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    [Fact]
    public async Task TheCoordinatorServesGrowingStepWorkerAndTransportCountersOnLoopback()
    {
        int metricsPort = ClusterProcesses.FreePort();
        var (coord, _, _) = _cluster.Start(TestData.WriteIdx(64, 16), workers: 1,
            "--epochs 100000 --max-steps 100000 --batch-size 32 --micro-batch 8", $"--metrics-port {metricsPort}");
        var first = await ScrapeUntil(metricsPort, m => Value(m, "disttrain_steps") >= 3);
        var second = await ScrapeUntil(metricsPort, m => Value(m, "disttrain_steps") > Value(first, "disttrain_steps") + 3);
        Assert.False(coord.HasExited, "the run ended before the endpoint could be scraped twice");
        Assert.Contains(_cluster.Lines(), l => l.Text == $"metrics for Prometheus: http://127.0.0.1:{metricsPort}/metrics");

        foreach (var name in new[] { "disttrain_samples", "disttrain_compute_seconds", "disttrain_communication_seconds", "disttrain_sent_bytes", "disttrain_step_seconds_count" })
            Assert.True(Value(second, name) > Value(first, name), $"{name}: {Value(first, name)} then {Value(second, name)}");
        foreach (var m in new[] { first, second })
        {
            double steps = Value(m, "disttrain_steps");
            // A scrape can fall between a step's counters; within one step they agree.
            Assert.InRange(Value(m, "disttrain_samples"), 32 * steps - 32, 32 * steps + 32);
            var worker = Regex.Match(m, "^disttrain_worker_micro_batches\\{worker=\"([^\"]+)\"\\} (\\S+)$", RegexOptions.Multiline);
            Assert.True(worker.Success, "no per-worker micro-batch counter");
            Assert.Contains("/w0", worker.Groups[1].Value);
            Assert.InRange(double.Parse(worker.Groups[2].Value, CultureInfo.InvariantCulture), 4 * steps - 4, 4 * steps + 8); // one step leased ahead
            Assert.True(double.IsFinite(Value(m, "disttrain_loss")));
        }
    }

    [Fact]
    public async Task AOneProcessRunServesItsStepCounters()
    {
        var spec = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(spec, TestData.TinyCnn);
        int metricsPort = ClusterProcesses.FreePort();
        var run = _cluster.Run($"train --model \"{spec}\" --dataset \"{TestData.WriteIdx(64, 16)}\" --epochs 100000 --max-steps 100000 --batch-size 32 " +
                               $"--checkpoint-every -1 --metrics-port {metricsPort} --out \"{Directory.CreateTempSubdirectory("disttrain-out-").FullName}\"", "train");
        var first = await ScrapeUntil(metricsPort, m => Value(m, "disttrain_steps") >= 3);
        var second = await ScrapeUntil(metricsPort, m => Value(m, "disttrain_steps") > Value(first, "disttrain_steps"));
        Assert.False(run.HasExited);
        Assert.True(Value(second, "disttrain_samples") > Value(first, "disttrain_samples"));
        Assert.InRange(Value(second, "disttrain_samples"), 32 * Value(second, "disttrain_steps") - 32, 32 * Value(second, "disttrain_steps") + 32);
    }

    /// <summary>Scrapes every 200 ms (at most 60 s) until <paramref name="ready"/> holds; returns that scrape.</summary>
    private static async Task<string> ScrapeUntil(int port, Func<string, bool> ready)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await Http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
                if (ready(last)) return last;
            }
            catch (HttpRequestException) { } // not listening yet
            catch (TaskCanceledException) { }
            await Task.Delay(200);
        }
        throw new Xunit.Sdk.XunitException($"the metrics endpoint never got there; last scrape:\n{last}");
    }

    /// <summary>The value of an unlabelled series in Prometheus' text format (NaN when absent).</summary>
    private static double Value(string scrape, string name)
    {
        var m = Regex.Match(scrape, $"^{Regex.Escape(name)} (\\S+)$", RegexOptions.Multiline);
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN;
    }

    public void Dispose() => _cluster.Dispose();
}
