// `disttrain train --metrics-port N`: serves the run's instruments (RunMeters, meter "DistTrain") and .NET's own
// (meter "System.Runtime": GC, CPU, thread pool) at http://HOST:N/metrics in Prometheus' text format, through
// prometheus-net's MeterAdapter. HOST is 127.0.0.1 unless --metrics-host asks for another interface.
using DistTrain.Cluster.Telemetry;
using Prometheus;

namespace DistTrain.Cli.Training;

public sealed class MetricsEndpoint : IDisposable
{
    private readonly IDisposable _adapter;
    private readonly MetricServer _server;

    private MetricsEndpoint(IDisposable adapter, MetricServer server) => (_adapter, _server) = (adapter, server);

    public string Url { get; private init; } = "";

    /// <summary>Starts serving on <paramref name="host"/>:<paramref name="port"/>; null when <paramref name="port"/> is 0 (off).</summary>
    public static MetricsEndpoint? Start(int port, string host, TextWriter console)
    {
        if (port == 0) return null;
        if (port is < 0 or > 65535) throw new ArgumentException($"--metrics-port must be a TCP port (1-65535), or 0 for none; not {port}.");
        var registry = Metrics.NewCustomRegistry();
        var adapter = MeterAdapter.StartListening(new MeterAdapterOptions
        {
            Registry = registry,
            MetricFactory = null, // its default (Metrics.DefaultFactory) would put the series into the default registry, not this one
            InstrumentFilterPredicate = i => i.Meter.Name is RunMeters.MeterName or "System.Runtime",
            ResolveHistogramBuckets = _ => Histogram.ExponentialBuckets(0.001, 2, 16), // step times of 1 ms .. 33 s
        });
        var server = new MetricServer(host, port, "metrics/", registry);
        try { server.Start(); }
        catch (Exception e) when (e is System.Net.HttpListenerException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            adapter.Dispose();
            throw new ArgumentException($"--metrics-port {port}: cannot listen on {host}:{port} ({e.Message}); pick a free port.", e);
        }
        var url = $"http://{(host.Contains(':') ? $"[{host}]" : host)}:{port}/metrics";
        console.WriteLine($"metrics for Prometheus: {url}");
        return new MetricsEndpoint(adapter, server) { Url = url };
    }

    public void Dispose()
    {
        _server.Dispose();
        _adapter.Dispose();
    }
}
