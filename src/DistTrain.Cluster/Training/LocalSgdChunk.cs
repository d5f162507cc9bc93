// What a worker computes for one local-sgd work unit (DESIGN contract 5), as pure code: chunk c of round
// r is micro-batch c of each plan step in [rH, rH+H). Starting from the round's averaged parameters θ_r,
// it takes one optimizer step per micro-batch (H local steps) with the job's optimizer on fresh state,
// then leaves δ = θ_local − θ_r in the gradient buffer for the PS to average. Fresh state per chunk makes a
// chunk a function of (θ_r, data, seed) alone: any worker can recompute it after a crash, and the round's
// average does not depend on which worker ran which chunk or how many there are.
using System.Numerics.Tensors;
using DistTrain.Data;
using DistTrain.Data.Plans;
using DistTrain.Nn.Training;
using DistTrain.Training;

namespace DistTrain.Cluster.Training;

public sealed class LocalSgdChunk
{
    private readonly Trainer _trainer;
    private readonly Dataset _train;
    private readonly ModeOptions _mode;
    private readonly int _seed, _batch, _micro;
    private readonly long _planSteps;
    private readonly Func<long, float> _schedule;
    private readonly float[] _anchor;
    private EpochPlan? _plan;

    /// <param name="trainer">The worker's replica; its optimizer is the local one (its state is cleared per chunk).</param>
    /// <param name="schedule">Learning rate of a 0-based plan step (the job's schedule).</param>
    public LocalSgdChunk(Trainer trainer, Dataset train, ModeOptions mode, int seed, int batch, int micro, long planSteps, Func<long, float> schedule)
    {
        if (mode.Mode != Messages.TrainingMode.LocalSgd) throw new ArgumentException($"LocalSgdChunk runs local-sgd, not {mode}.", nameof(mode));
        _trainer = trainer; _train = train; _mode = mode; _seed = seed; _batch = batch; _micro = micro; _planSteps = planSteps; _schedule = schedule;
        _anchor = new float[trainer.Model.Store.Values.Length];
    }

    /// <summary>
    /// Runs chunk <paramref name="chunk"/> of <paramref name="round"/> from the model's current values (θ_r). Afterwards the
    /// model's values are θ_local and its gradient buffer holds δ = θ_local − θ_r. Returns Σ loss, correct predictions, samples.
    /// </summary>
    /// <param name="statistics">With the model's running statistics and a buffer of H vectors: the BatchNorm batch statistics of
    /// each local step, in order (zeros past a short last round), for shard 0 to fold (ShardCheckpointing).</param>
    public (double LossSum, int Correct, int Samples) Run(long round, int chunk, RunningStatistics? statistics = null, Span<float> statisticsOut = default)
    {
        var values = _trainer.Model.Store.Values;
        values.AsSpan().CopyTo(_anchor);
        foreach (var (_, state) in _trainer.Optimizer.State) Array.Clear(state); // fresh optimizer for every chunk
        var (first, count) = _mode.RoundSteps(round, _planSteps);
        if (count == 0) throw new ArgumentOutOfRangeException(nameof(round), round, $"Round {round} is past the run's {_planSteps} steps.");
        int stepsPerEpoch = EpochPlan.CountSteps(_train.Count, _batch);
        double loss = 0; int correct = 0, samples = 0;
        for (int h = 0; h < count; h++)
        {
            long step = first + h;
            var (epoch, stepInEpoch) = EpochPlan.Locate(step, stepsPerEpoch);
            if (_plan is null || _plan.Epoch != epoch) _plan = EpochPlan.Create(_seed, epoch, _train.Count, _batch, _micro);
            var mb = _plan.MicroBatches(stepInEpoch)[chunk];
            // The micro-batch's sum over 1/M: its mean for a full micro-batch, as a local step on M samples would take.
            var r = _trainer.ComputeGradient(_train, _plan.Indices(mb), 1f / _micro, step, chunk);
            if (statistics is { Length: > 0 }) statistics.Gather(statisticsOut.Slice(h * statistics.Length, statistics.Length));
            // --clip-norm: each local step clips its own gradient, as a one-process step clips its batch's.
            if (_trainer.Options.ClipNorm > 0) DistTrain.Nn.Optimizers.GradientClipping.ClipByGlobalNorm(_trainer.Model.Store.Grads, _trainer.Options.ClipNorm);
            _trainer.Optimizer.Step(values, _trainer.Model.Store.Grads, _schedule(step), h + 1);
            loss += r.LossSum; correct += r.Correct; samples += mb.Size;
        }
        if (statistics is { Length: > 0 }) statisticsOut[(count * statistics.Length)..].Clear();
        TensorPrimitives.Subtract(values, _anchor, _trainer.Model.Store.Grads);
        return (loss, correct, samples);
    }
}
