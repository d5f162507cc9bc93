// Per-step metrics of a cluster run: sums the workers' MicroBatchDone reports (loss, compute /
// communication / wait time, bytes sent) and writes one metrics.jsonl line per step.
using System.Diagnostics;
using DistTrain.Nn.Training;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Runtime;

public sealed class StepLog : IDisposable
{
    private readonly MetricsLog _log;
    private readonly int _microBatches;
    private readonly Dictionary<string, double> _extra = [];
    private readonly bool[] _seen;
    private long _step = -1;
    private long _started;
    private double _loss, _compute, _comm, _wait;
    private long _bytes;
    private int _samples, _correct;
    private readonly Stopwatch _run = Stopwatch.StartNew();
    private double _lossSinceReport; private int _samplesSinceReport; private long _stepsSinceReport;

    public StepLog(string path, int microBatches)
    {
        _log = new MetricsLog(path);
        _microBatches = microBatches;
        _seen = new bool[microBatches];
    }

    public string Path => _log.Path;
    public long SamplesTotal { get; private set; }

    public void Begin(long step)
    {
        _step = step; _started = Stopwatch.GetTimestamp();
        _loss = _compute = _comm = _wait = 0; _bytes = 0; _samples = _correct = 0;
        Array.Clear(_seen);
    }

    /// <summary>Counts a report once per micro-batch (a re-computed micro-batch reports twice).</summary>
    public void Add(MicroBatchDone d)
    {
        if (d.Step != _step || (uint)d.MicroBatch >= (uint)_microBatches || _seen[d.MicroBatch]) return;
        _seen[d.MicroBatch] = true;
        _loss += d.Loss; _compute += d.ComputeMs; _comm += d.CommunicationMs; _wait += d.WaitMs; _bytes += d.BytesSent;
        _samples += d.SampleCount; _correct += d.Correct;
    }

    public void End(long step)
    {
        if (step != _step) return;
        double secs = Stopwatch.GetElapsedTime(_started).TotalSeconds;
        _extra["compute_ms"] = Math.Round(_compute, 3);
        _extra["communication_ms"] = Math.Round(_comm, 3);
        _extra["wait_ms"] = Math.Round(_wait, 3);
        _extra["bytes_sent"] = _bytes;
        _extra["train_accuracy"] = _samples == 0 ? double.NaN : (double)_correct / _samples;
        double loss = _samples == 0 ? double.NaN : _loss / _samples;
        _log.Step(new StepMetrics(step, 0, 0, 0, loss, _samples, secs, _samples / Math.Max(secs, 1e-9), float.NaN, double.NaN), _extra);
        SamplesTotal += _samples;
        _lossSinceReport += _loss; _samplesSinceReport += _samples; _stepsSinceReport++;
    }

    /// <summary>A progress line: steps done, mean loss since the last line, throughput.</summary>
    public string Summary(long done, long total)
    {
        double loss = _samplesSinceReport == 0 ? double.NaN : _lossSinceReport / _samplesSinceReport;
        string line = $"step {done}/{total}  loss {loss:F4}  {SamplesTotal / _run.Elapsed.TotalSeconds:F0} samples/s";
        _lossSinceReport = 0; _samplesSinceReport = 0; _stepsSinceReport = 0;
        return line;
    }

    public void Epoch(in EpochMetrics m) => _log.Epoch(m);

    public void Dispose() => _log.Dispose();
}
