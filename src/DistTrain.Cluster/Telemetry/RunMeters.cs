// The instruments of a training run (System.Diagnostics.Metrics, meter "DistTrain"): what the coordinator's StepLog
// (a cluster run) or the one-process progress records per step and per micro-batch. `--metrics-port` serves them to
// Prometheus as disttrain_<instrument> (docs/metrics.md); the CLI's live view reads them with a MeterListener;
// dotnet-counters can watch them too.
using System.Diagnostics.Metrics;

namespace DistTrain.Cluster.Telemetry;

public static class RunMeters
{
    public const string MeterName = "DistTrain";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> Steps = Meter.CreateCounter<long>("steps", "{step}", "Optimizer steps applied.");
    public static readonly Counter<long> Samples = Meter.CreateCounter<long>("samples", "{sample}", "Training samples whose gradient went into a step.");
    public static readonly Histogram<double> StepTime = Meter.CreateHistogram<double>("step_seconds", "s", "Wall time of a step, from its start to its last shard's update.");
    public static readonly Counter<double> Compute = Meter.CreateCounter<double>("compute_seconds", "s", "Time workers spent on forward and backward, summed over micro-batches.");
    public static readonly Counter<double> Communication = Meter.CreateCounter<double>("communication_seconds", "s", "Time workers spent sending gradients and receiving parameters.");
    public static readonly Counter<double> Wait = Meter.CreateCounter<double>("wait_seconds", "s", "Time workers spent waiting for the next parameter version.");
    public static readonly Counter<long> BytesSent = Meter.CreateCounter<long>("sent_bytes", "By", "Gradient bytes workers sent to the shards.");
    public static readonly Counter<long> MicroBatches = Meter.CreateCounter<long>("worker_micro_batches", "{micro-batch}", "Micro-batches a worker finished (tag worker).");
    public static readonly Counter<long> WorkerSamples = Meter.CreateCounter<long>("worker_samples", "{sample}", "Samples a worker computed (tag worker).");
    public static readonly Counter<long> Faults = Meter.CreateCounter<long>("faults", "{fault}", "Faults the run survived (tag kind: worker_lost, checkpoint_failed).");

    private static double _loss = double.NaN, _samplesPerSecond;
    private static long _epoch, _step;

    static RunMeters()
    {
        Meter.CreateObservableGauge("loss", () => _loss, null, "Training loss of the newest step.");
        Meter.CreateObservableGauge("samples_per_second", () => _samplesPerSecond, "{sample}/s", "Training throughput of the newest step.");
        Meter.CreateObservableGauge("epoch", () => _epoch, "{epoch}", "Epoch of the newest step (0-based).");
        Meter.CreateObservableGauge("step", () => _step, "{step}", "Newest step applied (0-based).");
    }

    /// <summary>The run's plan (steps in all and per epoch), for progress views; 0 = not known yet.</summary>
    public static long PlannedSteps { get; private set; }
    public static int StepsPerEpoch { get; private set; }

    public static void Plan(long steps, int stepsPerEpoch) => (PlannedSteps, StepsPerEpoch) = (steps, stepsPerEpoch);

    /// <summary>One applied step. Seconds of compute, communication and wait are summed over its micro-batches.</summary>
    public static void Step(long step, int epoch, double loss, int samples, double seconds, double compute, double communication, double wait, long bytes)
    {
        // The values a listener reads when it sees the step counter move are set first.
        _loss = loss;
        _samplesPerSecond = double.IsFinite(seconds) && seconds > 0 ? samples / seconds : _samplesPerSecond;
        _epoch = epoch;
        _step = step;
        Interlocked.Add(ref _samplesSoFar, samples);
        Samples.Add(samples);
        if (double.IsFinite(seconds) && seconds >= 0) StepTime.Record(seconds);
        if (compute > 0) Compute.Add(compute);
        if (communication > 0) Communication.Add(communication);
        if (wait > 0) Wait.Add(wait);
        if (bytes > 0) BytesSent.Add(bytes);
        Steps.Add(1);
    }

    private static long _samplesSoFar;
    public static long LastStep => _step;
    public static long LastEpoch => _epoch;
    public static double LastLoss => _loss;
    public static long SamplesSoFar => Interlocked.Read(ref _samplesSoFar);

    /// <summary>A worker's report of one micro-batch (counted once per micro-batch).</summary>
    public static void MicroBatch(string worker, int samples)
    {
        var tag = new KeyValuePair<string, object?>("worker", worker);
        MicroBatches.Add(1, tag);
        WorkerSamples.Add(samples, tag);
    }

    public static void Fault(string kind) => Faults.Add(1, new KeyValuePair<string, object?>("kind", kind));
}
