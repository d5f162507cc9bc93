// Simulated compute for scaling experiments (`disttrain node --simulate-compute MS|measured`): a worker waits a
// micro-batch's compute time instead of running forward and backward, and leaves in the gradient buffer a fixed
// pattern of the model's real size, so the protocol, the shards and the links carry real traffic while the
// compute costs no CPU. It calls the model's own gating hooks (Sequential.ParametersNeeded / GradientReady) where a
// real forward and backward would, so a sync worker still takes the pushed version and streams the gradient
// while the "backward" runs. Relies on EpochPlan for local-sgd chunk sizes; nothing else of the real step.
using System.Diagnostics;
using System.Numerics.Tensors;
using DistTrain.Data;
using DistTrain.Data.Plans;
using DistTrain.Nn.Models;
using DistTrain.Training;

namespace DistTrain.Cluster.Training;

/// <summary>What `--simulate-compute` asks for: a fixed micro-batch time, or <c>measured</c> (null Milliseconds): the
/// worker times a few real micro-batches once, at start, and waits that long from then on.</summary>
public sealed record SimulateComputeOption(double? Milliseconds)
{
    public const string Help = "MS (a micro-batch's compute time in milliseconds) or `measured` (timed once on this node at start)";

    /// <summary>Null for null, empty or "off"; throws ArgumentException naming the option and the fix for anything else bad.</summary>
    public static SimulateComputeOption? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Trim().Equals("off", StringComparison.OrdinalIgnoreCase)) return null;
        text = text.Trim();
        if (text.Equals("measured", StringComparison.OrdinalIgnoreCase)) return new SimulateComputeOption((double?)null);
        if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var ms)
            && ms >= 0 && double.IsFinite(ms) && ms <= 600_000)
            return new SimulateComputeOption(ms);
        throw new ArgumentException($"--simulate-compute '{text}' is not a micro-batch time: give {Help}, e.g. --simulate-compute 25.");
    }

    public override string ToString() => Milliseconds is { } ms ? ms.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) : "measured";
}

public sealed class SimulatedCompute
{
    /// <summary>Part of a micro-batch's time spent before the gradient starts to become final (the forward); a
    /// backward costs about twice a forward.</summary>
    private const double ForwardShare = 1.0 / 3;
    /// <summary>The "backward" makes the gradient final in this many slices, from the end of the flat buffer down,
    /// as a real backward does layer by layer, so a streaming worker's sends overlap the rest of the wait.</summary>
    private const int BackwardSlices = 4;

    private readonly float[] _pattern;
    private readonly int _seed, _batch, _micro;
    private readonly long _planSteps;
    private EpochPlan? _plan;

    /// <param name="microBatchMs">Wall time of one micro-batch's forward and backward.</param>
    /// <param name="parameters">Length of the flat gradient.</param>
    /// <param name="seed">The job's seed, batch and micro-batch size and plan steps: used only to count a local-sgd chunk's samples.</param>
    public SimulatedCompute(double microBatchMs, int parameters, int seed = 1, int batch = 1, int micro = 1, long planSteps = 0)
    {
        if (!(microBatchMs >= 0)) throw new ArgumentOutOfRangeException(nameof(microBatchMs), microBatchMs, "A micro-batch time is at least 0 ms.");
        MicroBatchMs = microBatchMs;
        (_seed, _batch, _micro, _planSteps) = (seed, batch, micro, planSteps);
        _pattern = new float[parameters];
        for (int i = 0; i < parameters; i++) _pattern[i] = Base(i);
    }

    public double MicroBatchMs { get; }

    /// <summary>The worker's simulation: the option's time, or (measured) the median of a few real micro-batches timed now.</summary>
    public static SimulatedCompute Start(SimulateComputeOption option, Trainer trainer, Dataset train, int seed, int batch, int micro, long planSteps) =>
        new(option.Milliseconds ?? Measure(trainer, train, micro), trainer.Model.Store.Count, seed, batch, micro, planSteps) { TrainCount = train.Count };

    /// <summary>
    /// Median wall time in ms of <paramref name="timed"/> real micro-batches of <paramref name="micro"/> samples (after
    /// <paramref name="warmup"/> untimed ones, which pay the JIT) on <paramref name="trainer"/>'s model. Leaves the model's
    /// gradient buffer dirty; the values and running statistics are those of a replica about to take a pushed version.
    /// </summary>
    public static double Measure(Trainer trainer, Dataset train, int micro, int warmup = 2, int timed = 5)
    {
        if (train.Count == 0) throw new ArgumentException("Measuring a micro-batch needs training samples; the dataset is empty.", nameof(train));
        var indices = Enumerable.Range(0, Math.Max(1, micro)).Select(i => i % train.Count).ToArray();
        var times = new double[timed];
        for (int r = 0; r < warmup + timed; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            trainer.ComputeGradient(train, indices, 1f / indices.Length, r, 0);
            if (r >= warmup) times[r - warmup] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[timed / 2];
    }

    /// <summary>Index i's pattern value: small (|v| ≤ 1e-3), finite, spread over signs (a hash of i).</summary>
    public static float Base(int i)
    {
        uint h = (uint)i * 0x9E3779B1u;
        h ^= h >> 15; h *= 0x85EBCA77u; h ^= h >> 13;
        return ((h >> 8) / (float)(1 << 24) - 0.5f) * 2e-3f;
    }

    /// <summary>The factor of (step, micro-batch): the sign alternates with the step, so an optimizer that follows the
    /// pattern walks back and forth and the weights stay near where they began.</summary>
    public static float Factor(long step, int microBatch) => ((step & 1) == 0 ? 1f : -1f) * (1f + (microBatch & 3) * 0.25f);

    /// <summary>The simulated gradient value at (step, micro-batch, index): Base(index) × Factor(step, micro-batch).</summary>
    public static float Value(long step, int microBatch, int index) => Base(index) * Factor(step, microBatch);

    /// <summary>
    /// One micro-batch of <paramref name="samples"/> samples: waits for the pushed values as a forward would, waits the
    /// forward's share of the time, then writes the gradient pattern and waits the backward's share in slices, after
    /// each telling the model's GradientReady hook (if set) from where the gradient is final. Returns the loss sum of a
    /// uniform prediction (ln 10 per sample) and no correct predictions: the run's loss says nothing about learning.
    /// </summary>
    public (double LossSum, int Correct) MicroBatch(Sequential model, int samples, long step, int microBatch)
    {
        var grads = model.Store.Grads;
        long t0 = Stopwatch.GetTimestamp();
        model.ParametersNeeded?.Invoke(grads.Length);
        // Time in the hooks (waiting for parameters, sending gradient chunks) comes on top of the compute time, as on a real
        // compute thread; deadlines from one start keep a late wake-up from adding up over the slices.
        double hookMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        double forwardMs = MicroBatchMs * ForwardShare;
        WaitUntil(t0, forwardMs + hookMs);
        TensorPrimitives.Multiply(_pattern, Factor(step, microBatch), grads.AsSpan(0, _pattern.Length));
        for (int s = 1; s <= BackwardSlices; s++)
        {
            WaitUntil(t0, forwardMs + (MicroBatchMs - forwardMs) * s / BackwardSlices + hookMs);
            long h = Stopwatch.GetTimestamp();
            model.GradientReady?.Invoke((int)((long)grads.Length * (BackwardSlices - s) / BackwardSlices));
            hookMs += Stopwatch.GetElapsedTime(h).TotalMilliseconds;
        }
        return (samples * Math.Log(10), 0);
    }

    /// <summary>
    /// Local-sgd chunk <paramref name="chunk"/> of <paramref name="round"/> (LocalSgdChunk's unit): waits one micro-batch's
    /// time per local step and leaves the pattern of the round's first step as the delta. Returns loss sum, correct, samples.
    /// </summary>
    public (double LossSum, int Correct, int Samples) LocalChunk(Sequential model, ModeOptions mode, long round, int chunk)
    {
        long t0 = Stopwatch.GetTimestamp();
        var (first, count) = mode.RoundSteps(round, _planSteps);
        int samples = 0;
        for (int h = 0; h < count; h++)
        {
            long step = first + h;
            int stepsPerEpoch = EpochPlan.CountSteps(_trainCount, _batch);
            var (epoch, stepInEpoch) = EpochPlan.Locate(step, stepsPerEpoch);
            if (_plan is null || _plan.Epoch != epoch) _plan = EpochPlan.Create(_seed, epoch, _trainCount, _batch, _micro);
            samples += _plan.MicroBatches(stepInEpoch)[chunk].Size;
        }
        TensorPrimitives.Multiply(_pattern, Factor(round, chunk), model.Store.Grads.AsSpan(0, _pattern.Length));
        WaitUntil(t0, MicroBatchMs * count);
        return (samples * Math.Log(10), 0, samples);
    }

    private int _trainCount = 1;

    /// <summary>The training set's size (local-sgd counts a chunk's samples from the epoch plan).</summary>
    public int TrainCount { get => _trainCount; init => _trainCount = Math.Max(1, value); }

    /// <summary>Sleeps until <paramref name="ms"/> after <paramref name="t0"/>.</summary>
    private static void WaitUntil(long t0, double ms)
    {
        while (true)
        {
            double left = ms - Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (left <= 0) return;
            Thread.Sleep(TimeSpan.FromMilliseconds(Math.Max(left, 0.05)));
        }
    }
}
