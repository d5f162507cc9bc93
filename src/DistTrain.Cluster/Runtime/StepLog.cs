// Per-step metrics of a cluster run: sums the workers' MicroBatchDone reports (loss, compute /
// communication / wait time, bytes sent) and writes one metrics.jsonl line per step. A report can
// arrive after its step was applied (it travels worker → coordinator while the shards' acknowledgements
// travel shard → coordinator), so a step's line is written once it ended and all its reports are in,
// or when it is a few steps old.
using System.Diagnostics;
using DistTrain.Nn.Training;
using DistTrain.Training;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Runtime;

public sealed class StepLog : IDisposable
{
    private const int Lag = 4;
    private readonly MetricsLog _log;
    private readonly int _microBatches;
    private readonly Dictionary<string, double> _extra = [];
    private readonly SortedDictionary<long, Entry> _open = [];
    private readonly Stopwatch _run = Stopwatch.StartNew();
    private double _lossSinceReport; private int _samplesSinceReport;
    // The epoch whose steps are being written, and its training sums: its record goes out when the first step of the
    // next epoch is written (test fields NaN: only the end of the run evaluates), the last one with the run's evaluation.
    private long _epoch = -1;
    private double _epochLoss; private long _epochCorrect, _epochSamples; private long _epochStarted = Stopwatch.GetTimestamp();
    // When each epoch's first step began and its last step ended: lines are written late (up to Lag steps, or at the
    // end of the run), so the time of writing says nothing about the epoch's duration.
    private readonly Dictionary<long, (long Began, long Ended)> _epochTimes = [];
    private long _written = -1; // the newest unit whose line is out: a report for it or an older one comes too late

    private sealed class Entry(int microBatches)
    {
        public readonly bool[] Seen = new bool[microBatches];
        public int Count;
        public long Started = Stopwatch.GetTimestamp();
        public double Seconds = double.NaN;
        public double Loss, Compute, Comm, Wait;
        public double ComputeMin = double.PositiveInfinity, ComputeMax; // the fastest and slowest micro-batch: the spread a sync step waits on
        public long Bytes;
        public int Samples, Correct;
        public long StaleSum, StaleMax, StaleCount;
    }

    private readonly int _stepsPerEpoch;
    private readonly Func<long, float> _learningRate;

    /// <param name="learningRate">The schedule (0-based step → rate), written beside each step.</param>
    public StepLog(string path, int microBatches, int stepsPerEpoch, Func<long, float> learningRate, bool append = false)
    {
        _log = new MetricsLog(path, append, flushEachLine: true);
        _microBatches = microBatches;
        _stepsPerEpoch = Math.Max(1, stepsPerEpoch);
        _learningRate = learningRate;
    }

    public string Path => _log.Path;
    /// <summary>The newest unit whose line is written (in this process or, continuing a file, before it: SkipWritten); -1 if none.</summary>
    public long Written => _written;
    /// <summary>The plan step a logged unit ends at (local-sgd logs one line per round, labelled with its last step).</summary>
    public Func<long, long> StepOfUnit { get; init; } = unit => unit;

    /// <summary>Writes a line of another kind (the run's mode at the start, the staleness summary at the end).</summary>
    public void Record(string kind, IEnumerable<KeyValuePair<string, string>> text, IEnumerable<KeyValuePair<string, double>>? numbers = null) =>
        _log.Record(kind, text, numbers);

    /// <summary>Async: one applied update of <paramref name="step"/> was <paramref name="staleness"/> versions stale.</summary>
    public void Staleness(long step, long staleness)
    {
        if (!_open.TryGetValue(step, out var e)) return;
        e.StaleSum += staleness; e.StaleCount++;
        if (staleness > e.StaleMax) e.StaleMax = staleness;
    }
    public long SamplesTotal { get; private set; }

    /// <summary>
    /// Continuing a file (a resumed run, a coordinator that took over): the units whose lines it holds are not written again
    /// when they are computed again, so every step has one line. Reads the file's step lines; <paramref name="units"/> bounds the search.
    /// </summary>
    public void SkipWritten(long units)
    {
        long last = -1;
        try
        {
            using var reader = new StreamReader(new FileStream(_log.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            while (reader.ReadLine() is { } line)
            {
                if (!line.Contains("\"kind\":\"step\"", StringComparison.Ordinal)) continue;
                try
                {
                    using var json = System.Text.Json.JsonDocument.Parse(line);
                    if (json.RootElement.TryGetProperty("step", out var st) && st.TryGetInt64(out long v)) last = Math.Max(last, v);
                }
                catch (System.Text.Json.JsonException) { } // a line cut by the crash: its step is computed again
            }
        }
        catch (IOException) { return; }
        if (last < 0) return;
        // The newest unit whose line (labelled StepOfUnit(unit)) is in the file; StepOfUnit grows with the unit.
        long lo = -1, hi = units;
        while (lo < hi)
        {
            long mid = lo + (hi - lo + 1) / 2;
            if (StepOfUnit(mid) <= last) lo = mid; else hi = mid - 1;
        }
        _written = Math.Max(_written, lo);
        if (lo >= 0) _epoch = StepOfUnit(lo) / _stepsPerEpoch;
    }

    public void Begin(long step)
    {
        if (step <= _written) return; // computed again after a roll-back: its line is written already
        long now = Stopwatch.GetTimestamp();
        // A worker leased one step ahead may report before the step begins (Add opened it): its time starts now.
        if (_open.TryGetValue(step, out var early)) early.Started = now;
        else _open.TryAdd(step, new Entry(_microBatches));
        long epoch = StepOfUnit(step) / _stepsPerEpoch;
        if (!_epochTimes.ContainsKey(epoch)) _epochTimes[epoch] = (now, now);
    }

    /// <summary>Counts a report once per micro-batch (a re-computed micro-batch reports twice).</summary>
    public void Add(MicroBatchDone d)
    {
        if (!_open.TryGetValue(d.Step, out var e) && d.Step > _written && (uint)d.MicroBatch < (uint)_microBatches)
            _open[d.Step] = e = new Entry(_microBatches); // leased ahead: computed before the coordinator began its step
        if (e is null || (uint)d.MicroBatch >= (uint)_microBatches || e.Seen[d.MicroBatch]) return;
        e.Seen[d.MicroBatch] = true; e.Count++;
        e.Loss += d.Loss; e.Compute += d.ComputeMs; e.ComputeMin = Math.Min(e.ComputeMin, d.ComputeMs); e.ComputeMax = Math.Max(e.ComputeMax, d.ComputeMs); e.Comm += d.CommunicationMs; e.Wait += d.WaitMs; e.Bytes += d.BytesSent;
        e.Samples += d.SampleCount; e.Correct += d.Correct;
        SamplesTotal += d.SampleCount;
        _lossSinceReport += d.Loss; _samplesSinceReport += d.SampleCount;
        Telemetry.RunMeters.MicroBatch(d.WorkerId, d.SampleCount);
        if (_final is not null) TryWriteFinal(force: false);
        else Flush(d.Step);
    }

    public void End(long step)
    {
        if (_open.TryGetValue(step, out var e)) e.Seconds = Stopwatch.GetElapsedTime(e.Started).TotalSeconds;
        long epoch = StepOfUnit(step) / _stepsPerEpoch;
        if (_epochTimes.TryGetValue(epoch, out var t)) _epochTimes[epoch] = (t.Began, Stopwatch.GetTimestamp());
        Flush(step);
    }

    private void Flush(long current)
    {
        while (_open.Count > 0)
        {
            var (step, e) = _open.First();
            bool ended = !double.IsNaN(e.Seconds);
            if (!(ended && e.Count == _microBatches) && !(ended && current - step >= Lag) && !(current - step > 2 * Lag)) break;
            _open.Remove(step);
            Write(step, e);
        }
    }

    private void Write(long step, Entry e)
    {
        _written = Math.Max(_written, step);
        _extra["compute_ms"] = Math.Round(e.Compute, 3);
        _extra["compute_min_ms"] = e.Count == 0 ? double.NaN : Math.Round(e.ComputeMin, 3);
        _extra["compute_max_ms"] = Math.Round(e.ComputeMax, 3);
        _extra["communication_ms"] = Math.Round(e.Comm, 3);
        _extra["wait_ms"] = Math.Round(e.Wait, 3);
        _extra["bytes_sent"] = e.Bytes;
        _extra["train_accuracy"] = e.Samples == 0 ? double.NaN : (double)e.Correct / e.Samples;
        if (e.StaleCount > 0) { _extra["staleness_mean"] = Math.Round((double)e.StaleSum / e.StaleCount, 3); _extra["staleness_max"] = e.StaleMax; }
        else { _extra.Remove("staleness_mean"); _extra.Remove("staleness_max"); }
        step = StepOfUnit(step);
        long epoch = step / _stepsPerEpoch;
        if (epoch != _epoch)
        {
            if (_epoch >= 0) WriteEpoch(new EpochMetrics((int)_epoch, step, double.NaN, double.NaN, double.NaN, double.NaN, 0, 0));
            _epoch = epoch;
        }
        _epochLoss += e.Loss; _epochCorrect += e.Correct; _epochSamples += e.Samples;
        double loss = e.Samples == 0 ? double.NaN : e.Loss / e.Samples;
        double secs = double.IsNaN(e.Seconds) ? double.NaN : e.Seconds;
        _log.Step(new StepMetrics(step, (int)(step / _stepsPerEpoch), (int)(step % _stepsPerEpoch), _stepsPerEpoch, loss, e.Samples, secs,
            e.Samples / Math.Max(secs, 1e-9), _learningRate(step), double.NaN), _extra);
        Telemetry.RunMeters.Step(step, (int)(step / _stepsPerEpoch), loss, e.Samples, secs, e.Compute / 1000, e.Comm / 1000, e.Wait / 1000, e.Bytes);
    }

    /// <summary>A progress line: steps done, mean loss since the last line, throughput.</summary>
    public string Summary(long done, long total)
    {
        double loss = _samplesSinceReport == 0 ? double.NaN : _lossSinceReport / _samplesSinceReport;
        _lossSinceReport = 0; _samplesSinceReport = 0;
        return $"step {done}/{total}  loss {loss:F4}  {SamplesTotal / _run.Elapsed.TotalSeconds:F0} samples/s";
    }

    /// <summary>The run's last epoch record (with its evaluation): steps still open are written first; training loss,
    /// accuracy, seconds and samples not given come from the epoch's steps. The run can end before the reports of its
    /// last steps arrive (they travel from the workers while the shards' final state travels from the shards): then the
    /// lines wait for them, or for <see cref="Dispose"/>.</summary>
    public void Epoch(in EpochMetrics m)
    {
        _final = m;
        TryWriteFinal(force: false);
    }

    private EpochMetrics? _final;

    private void TryWriteFinal(bool force)
    {
        if (_final is not { } m || (!force && _open.Values.Any(e => e.Count < _microBatches))) return;
        foreach (var (step, e) in _open) Write(step, e);
        _open.Clear();
        _final = null;
        WriteEpoch(m);
    }

    private void WriteEpoch(EpochMetrics m)
    {
        if (_epochSamples > 0)
        {
            if (double.IsNaN(m.TrainLoss)) m = m with { TrainLoss = _epochLoss / _epochSamples };
            if (double.IsNaN(m.TrainAccuracy)) m = m with { TrainAccuracy = (double)_epochCorrect / _epochSamples };
            if (m.Samples == 0) m = m with { Samples = (int)Math.Min(_epochSamples, int.MaxValue) };
        }
        if (m.Seconds == 0)
            m = m with { Seconds = _epochTimes.Remove(m.Epoch, out var t) && t.Ended > t.Began
                ? Stopwatch.GetElapsedTime(t.Began, t.Ended).TotalSeconds
                : Stopwatch.GetElapsedTime(_epochStarted).TotalSeconds };
        _log.Epoch(m);
        _epochLoss = 0; _epochCorrect = 0; _epochSamples = 0; _epochStarted = Stopwatch.GetTimestamp();
    }

    public void Dispose()
    {
        TryWriteFinal(force: true);
        _log.Dispose();
    }
}
