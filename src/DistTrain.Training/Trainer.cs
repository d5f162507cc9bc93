// The one-process training loop (no actors): epoch plan → global batches → micro-batches; each
// micro-batch gradient is computed from zero with loss scale 1/B (ComputeGradient, what a cluster worker
// runs) and handed to a ParameterShard over the whole vector — the cluster's shard code: the sum in
// micro-batch order, the clip by the exact global norm, the optimizer call — so one process and N workers
// give the same bits (DESIGN contract 2). A steady-state step allocates nothing.
using System.Diagnostics;
using DistTrain.Nn;
using DistTrain.Data;
using DistTrain.Data.Augmentation;
using DistTrain.Data.Plans;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;
using DistTrain.Tensors;
using DistTrain.Training.Steps;

namespace DistTrain.Training;

/// <summary>Loop settings. MicroBatch 0 means one micro-batch per global batch.</summary>
public sealed record TrainerOptions
{
    public int Epochs { get; init; } = 1;
    /// <summary>Global batch B: samples per optimizer step.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Micro-batch M (≤ B): the unit of work a cluster worker computes; 0 = B.</summary>
    public int MicroBatch { get; init; }
    public int Seed { get; init; } = 1;
    /// <summary>Stop after this many optimizer steps in total (0 = no limit).</summary>
    public long MaxSteps { get; init; }
    /// <summary>Clip the summed gradient to this global L2 norm (0 = off).</summary>
    public float ClipNorm { get; init; }
    /// <summary>Samples per forward pass during evaluation.</summary>
    public int EvalBatch { get; init; } = 500;
    /// <summary>Training-time image augmentation, drawn from (seed, step, micro-batch, sample); never applied in evaluation.</summary>
    public ImageAugmentation Augmentation { get; init; } = ImageAugmentation.None;
    /// <summary>Each micro-batch gradient goes through this codec before the sum, as on a cluster's data plane (GradientCodec).</summary>
    public GradientCompression Compression { get; init; }

    public int EffectiveMicroBatch => MicroBatch <= 0 ? BatchSize : Math.Min(MicroBatch, BatchSize);

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentException($"epochs must be at least 1, not {Epochs}.", nameof(Epochs));
        if (BatchSize < 1) throw new ArgumentException($"batch size must be at least 1, not {BatchSize}.", nameof(BatchSize));
        if (MicroBatch < 0 || MicroBatch > BatchSize)
            throw new ArgumentException($"micro-batch {MicroBatch} must be between 1 and the batch size {BatchSize} (0 = the batch size).", nameof(MicroBatch));
        if (MaxSteps < 0) throw new ArgumentException($"max steps must be ≥ 0, not {MaxSteps}.", nameof(MaxSteps));
        if (ClipNorm < 0 || !float.IsFinite(ClipNorm)) throw new ArgumentException($"clip norm must be ≥ 0, not {ClipNorm}.", nameof(ClipNorm));
        if (EvalBatch < 1) throw new ArgumentException($"eval batch must be at least 1, not {EvalBatch}.", nameof(EvalBatch));
        ArgumentNullException.ThrowIfNull(Augmentation);
    }
}

/// <summary>After each optimizer step. Loss is the mean over the global batch.</summary>
public readonly record struct StepMetrics(long Step, int Epoch, int StepInEpoch, int StepsInEpoch, double Loss, int Samples,
    double Seconds, double SamplesPerSecond, float LearningRate, double GradNorm);

/// <summary>After each epoch; Test* are NaN when no test set was given.</summary>
public readonly record struct EpochMetrics(int Epoch, long Step, double TrainLoss, double TrainAccuracy,
    double TestLoss, double TestAccuracy, double Seconds, int Samples);

/// <summary>Mean loss, accuracy (NaN for regression) and sample count of an evaluation.</summary>
public readonly record struct EvalResult(double Loss, double Accuracy, int Samples);

public sealed partial class Trainer
{
    private readonly Sequential _model;
    private readonly Loss _loss;
    private readonly Optimizer _optimizer;
    private readonly Func<long, float> _schedule;
    private readonly Objective _objective;
    private readonly ParameterShard _shard;   // the whole vector, on the model's values: sums, clips and applies each step
    private readonly Dictionary<int, Batch> _batches = [];
    private readonly float[] _augmentScratch = [];
    private ErrorFeedback? _feedback;          // --compression topk: what earlier micro-batches did not send

    /// <param name="schedule">learning rate for a 0-based step.</param>
    public Trainer(Sequential model, Loss loss, Optimizer optimizer, Func<long, float> schedule, TrainerOptions options)
    {
        options.Validate();
        if (optimizer.Length != model.Store.Count)
            throw new ArgumentException($"Optimizer {optimizer} covers {optimizer.Length} values but the model has {model.Store.Count} parameters.", nameof(optimizer));
        _model = model; _loss = loss; _optimizer = optimizer; _schedule = schedule; Options = options;
        _objective = ObjectiveOf(loss);
        int m = options.EffectiveMicroBatch;
        _shard = ParameterShard.Over(model.Store.Values, optimizer, schedule, (options.BatchSize + m - 1) / m);
        if (options.Augmentation.Enabled)
        {
            var shape = model.InputShape;
            if (shape.Length != 3)
                throw new ArgumentException($"Augmentation {options.Augmentation} needs image inputs (C,H,W) but the model takes {Tensor.ShapeString(shape)}; use --augment none.", nameof(options));
            _augmentScratch = new float[shape[1] * shape[2]];
        }
    }

    public TrainerOptions Options { get; }
    public Sequential Model => _model;
    public Optimizer Optimizer => _optimizer;
    /// <summary>Optimizer steps taken so far (the next step's 0-based index).</summary>
    public long Step => _shard.Version;
    /// <summary>Epochs completed so far.</summary>
    public int Epoch { get; private set; }
    /// <summary>Called after every step, on the training thread; keep it cheap (it is on the hot path).</summary>
    public Action<StepMetrics>? StepCompleted { get; set; }
    public Action<EpochMetrics>? EpochCompleted { get; set; }
    /// <summary>The summed (and clipped) gradient of the last step, in the model's flat layout. With one
    /// micro-batch per step this is the model's gradient buffer itself, valid until the next gradient.</summary>
    public ReadOnlySpan<float> LastGradient => _shard.Aggregator.Sum;

    /// <summary>Sets the position to resume from (a checkpoint's step and completed epochs); the model holds its values.</summary>
    public void Resume(long step, int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        _shard.Restore(_model.Store.Values, step);
        Epoch = epoch;
    }

    /// <summary>
    /// Forward + backward of one micro-batch from zeroed gradients: model.Store.Grads becomes
    /// scale · ∂(Σ loss)/∂θ. Returns Σ loss over the micro-batch and the number of correct predictions.
    /// This is what a cluster worker computes for one (step, micro-batch).
    /// </summary>
    public (double LossSum, int Correct) ComputeGradient(Dataset data, ReadOnlySpan<int> indices, float scale, long step, int microBatch)
    {
        var b = BatchFor(data, indices.Length);
        data.Gather(indices, b.X, b.Labels);
        var aug = Options.Augmentation;
        if (aug.Enabled)
        {
            var s = _model.InputShape;
            aug.Apply(b.X.Span, indices.Length, s[0], s[1], s[2], (ulong)(uint)Options.Seed, step, microBatch, _augmentScratch);
        }
        GatherTargets(data, indices, b);
        _model.Store.ZeroGrad();
        var ctx = new StepContext(true, (ulong)(uint)Options.Seed, step, microBatch);
        var y = _model.Forward(b.X, ctx);
        var dy = b.EnsureDy(y);
        double loss = _loss.Compute(y, b.Labels, b.Targets(y), dy, scale) + _model.AddedLoss(scale);
        _model.Backward(dy);
        return (loss, CountCorrect(y, b.Labels));
    }

    /// <summary>One optimizer step over a global batch given as micro-batches (in order). Returns the mean loss.</summary>
    public double TrainStep(Dataset data, IReadOnlyList<int[]> microBatches)
    {
        int total = 0;
        for (int i = 0; i < microBatches.Count; i++) total += microBatches[i].Length;
        _shard.BeginStep(Step, microBatches.Count);
        double lossSum = 0;
        for (int i = 0; i < microBatches.Count; i++) lossSum += AccumulateMicroBatch(data, microBatches[i], i, microBatches.Count, total).LossSum;
        ApplyStep(out _);
        return lossSum / total;
    }

    private (double LossSum, int Correct) AccumulateMicroBatch(Dataset data, ReadOnlySpan<int> indices, int microBatch, int microBatches, int globalBatch)
    {
        var r = ComputeGradient(data, indices, 1f / globalBatch, Step, microBatch);
        // A cluster's shard sums what it decodes from the worker's compressed frames: sum the same values here.
        if (Options.Compression == GradientCompression.TopK)
            (_feedback ??= new ErrorFeedback(_model.Store.Count)).Apply(_model.Store.Grads, 0, _model.Store.Count);
        else GradientCodec.RoundTrip(Options.Compression, _model.Store.Grads);
        // Folded in index order straight from the model's gradient buffer, as a shard folds arrivals; a step of one
        // micro-batch uses that buffer as its sum (no copy). A non-finite gradient is refused, as on a cluster, where
        // its recomputation gives the same bits and stops the run.
        if (_shard.Aggregator.FoldInOrder(Step, microBatch, _model.Store.Grads) == ChunkCommit.NotFinite)
            throw new InvalidOperationException($"The gradient of micro-batch {microBatch} at step {Step} is not finite: training diverged. " +
                                                "Lower --lr or set --clip-norm; nothing was applied." +
                                                (Options.Compression == GradientCompression.Fp16 ? " With --compression fp16, a value beyond ±65504 is infinite too: try bf16." : ""));
        return r;
    }

    private float ApplyStep(out double gradNorm)
    {
        gradNorm = Options.ClipNorm > 0 ? Math.Sqrt(_shard.SquareSum().ToDouble()) : double.NaN;
        float lr = _schedule(Step);
        if (!_shard.TryApply(Options.ClipNorm, gradNorm))
            throw new InvalidOperationException($"Step {Step} is missing micro-batches; nothing was applied.");
        return lr;
    }

    /// <summary>Runs the remaining epochs (or until MaxSteps), evaluating on <paramref name="test"/> after each.</summary>
    public EpochMetrics Fit(Dataset train, Dataset? test = null, CancellationToken cancel = default)
    {
        CheckData(train);
        if (test is not null) CheckData(test);
        int b = Options.BatchSize, m = Options.EffectiveMicroBatch;
        var last = default(EpochMetrics);
        while (Epoch < Options.Epochs && !Done && !cancel.IsCancellationRequested)
        {
            var plan = EpochPlan.Create(Options.Seed, Epoch, train.Count, b, m);
            if (plan.Steps == 0)
                throw new ArgumentException($"Dataset {train.Name} has {train.Count} samples, fewer than one batch of {b}; lower --batch-size.");
            var sw = Stopwatch.StartNew();
            double lossSum = 0; long correct = 0; int seen = 0;
            // Resuming mid-epoch (a checkpoint at step t) starts at t's position in this epoch's plan.
            int first = (int)Math.Clamp(Step - plan.FirstStep, 0, plan.Steps);
            for (int s = first; s < plan.Steps && !Done && !cancel.IsCancellationRequested; s++)
            {
                long t0 = Stopwatch.GetTimestamp();
                if (plan.GlobalStep(s) != Step) _shard.Restore(_model.Store.Values, plan.GlobalStep(s)); // a resume before this epoch's start
                var mbs = plan.MicroBatches(s);
                int total = plan.StepSize(s);
                _shard.BeginStep(Step, mbs.Count);
                double stepLoss = 0;
                for (int i = 0; i < mbs.Count; i++)
                {
                    var mb = mbs[i];
                    var r = AccumulateMicroBatch(train, plan.Indices(mb), mb.Index, mbs.Count, total);
                    stepLoss += r.LossSum; correct += r.Correct;
                }
                if (!double.IsFinite(stepLoss))
                    throw new InvalidOperationException($"The loss became {stepLoss} at step {Step}: training diverged. Lower --lr or set --clip-norm; nothing was applied.");
                float lr = ApplyStep(out var norm);
                lossSum += stepLoss; seen += total;
                double secs = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                StepCompleted?.Invoke(new StepMetrics(Step - 1, Epoch, s, plan.Steps, stepLoss / total, total, secs, total / secs, lr, norm));
            }
            var eval = test is null ? new EvalResult(double.NaN, double.NaN, 0) : Evaluate(test);
            bool complete = Step >= plan.FirstStep + plan.Steps;
            int epochIndex = Epoch;
            if (complete) Epoch++;
            last = new EpochMetrics(epochIndex, Step, seen == 0 ? double.NaN : lossSum / seen,
                _objective == Objective.Regression || seen == 0 ? double.NaN : (double)correct / seen,
                eval.Loss, eval.Accuracy, sw.Elapsed.TotalSeconds, seen);
            EpochCompleted?.Invoke(last);
            if (!complete) break; // stopped mid-epoch (max steps or cancelled)
        }
        return last;
    }

    private bool Done => Options.MaxSteps > 0 && Step >= Options.MaxSteps;

    /// <summary>Mean loss and accuracy over a dataset, in eval mode (dropout off, BatchNorm running statistics).</summary>
    public EvalResult Evaluate(Dataset data)
    {
        CheckData(data);
        int n = data.Count, eb = Options.EvalBatch;
        if (n == 0) return new EvalResult(double.NaN, double.NaN, 0);
        double lossSum = 0; long correct = 0;
        var idx = new int[Math.Min(eb, n)];
        for (int start = 0; start < n; start += eb)
        {
            int count = Math.Min(eb, n - start);
            for (int i = 0; i < count; i++) idx[i] = start + i;
            var b = BatchFor(data, count);
            var indices = idx.AsSpan(0, count);
            data.Gather(indices, b.X, b.Labels);
            GatherTargets(data, indices, b);
            var y = _model.Forward(b.X, StepContext.Eval);
            lossSum += _loss.Compute(y, b.Labels, b.Targets(y), b.EnsureDy(y), 1f / n) + _model.AddedLoss(1f / n);
            correct += CountCorrect(y, b.Labels);
        }
        return new EvalResult(lossSum / n, _objective == Objective.Regression ? double.NaN : (double)correct / n, n);
    }

    private void CheckData(Dataset data)
    {
        var want = _model.InputShape;
        if (!data.SampleShape.AsSpan().SequenceEqual(want))
        {
            int len = 1;
            foreach (var d in want) len *= d;
            if (len != data.SampleLength)
                throw new ArgumentException($"Dataset {data.Name} has samples of shape {Tensor.ShapeString(data.SampleShape)} but the model takes {Tensor.ShapeString(want)}.");
        }
        if (_objective == Objective.Classification)
        {
            int classes = _model.OutputShape[^1];
            if (data.Classes > classes)
                throw new ArgumentException($"Dataset {data.Name} has {data.Classes} classes but the model outputs {classes}; change the last layer's \"out\".");
        }
    }
}
