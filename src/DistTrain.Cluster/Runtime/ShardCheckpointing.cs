// What a PS shard adds for checkpoints and BatchNorm buffers (DESIGN contracts 2 and 4): shard 0 keeps
// the model's running statistics in every mode, folding the workers' per-micro-batch statistics in the
// order the mode applies work (StatisticsLog); every shard sends its range, its optimizer state (and shard 0 the buffers) for
// a checkpoint, and takes them back from the coordinator when a run resumes. Called by
// ParameterServerActor under its lock; the frame handling stays there.
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Runtime;

public sealed class ShardCheckpointing
{
    private readonly ParameterShard _shard;
    private readonly Sequential _replica;        // its Buffers are the running statistics (meaningful on shard 0)
    private readonly RunningStatistics _running;
    private readonly StatisticsLog _log;
    private readonly int _microBatches;
    private SnapshotAssembly? _restore;
    private readonly ModeOptions _mode;
    private readonly long _planSteps;

    /// <param name="mode">How the shard applies work, and so in which order shard 0 folds the statistics (StatisticsLog).</param>
    /// <param name="planSteps">Optimizer steps of the run (local-sgd: how many local steps the last round has).</param>
    public ShardCheckpointing(ParameterShard shard, Sequential replica, int microBatches, ModeOptions? mode = null, long planSteps = 0)
    {
        _shard = shard;
        _replica = replica;
        _running = new RunningStatistics(replica);
        _mode = mode ?? ModeOptions.Sync;
        _planSteps = planSteps;
        _microBatches = microBatches;
        int vectors = _mode.Mode == TrainingMode.LocalSgd ? _mode.LocalSteps : 1;
        int pending = _mode.Mode == TrainingMode.Async ? microBatches * (_mode.Staleness + 2) : 2 * microBatches;
        _log = new StatisticsLog(KeepsStatistics ? _running.Length * vectors : 0, microBatches, pending,
            stepWindow: _mode.Mode == TrainingMode.Async ? long.MaxValue : 1);
        _log.Begin(_mode.Mode == TrainingMode.Async ? 0 : shard.Version, microBatches);
        KeepCopy(); // the start: a coordinator that takes over early can roll back to it
    }

    /// <summary>Floats of one statistics frame: one vector per micro-batch, or per local step of a local-sgd chunk.</summary>
    public static int FrameLength(RunningStatistics statistics, ModeOptions mode) =>
        statistics.Length * (mode.Mode == TrainingMode.LocalSgd ? mode.LocalSteps : 1);

    /// <summary>Shard 0 of a model with BatchNorm layers: receives statistics and owns the buffers.</summary>
    public bool KeepsStatistics => _shard.Shard == 0 && _running.Length > 0;
    public bool Restored { get; private set; }

    // ---- BatchNorm statistics (worker → shard 0, before the micro-batch's gradient) ----

    /// <summary>A gradient of (step, micro-batch) may be kept only once its statistics are here.</summary>
    public bool StatisticsReady(long step, int microBatch) => _log.Has(step, microBatch);

    public Span<float> RentStatistics(FrameHeader h, out GradientDrop reason) =>
        KeepsStatistics ? _log.Reserve(h.Step, h.MicroBatch, h.Length, out reason) : RejectAll(out reason);

    public void StatisticsArrived(in FrameHeader h) => _log.Commit(h.Step, h.MicroBatch);
    public void StatisticsDropped(in FrameHeader h) => _log.Abort(h.Step, h.MicroBatch);

    /// <summary>Sync and local-sgd: the shard applied a step (a round): fold its statistics in the mode's order, then collect the next's.</summary>
    public void StepApplied()
    {
        long unit = _log.Step;
        bool folded = _mode.Mode == TrainingMode.LocalSgd
            ? _log.FoldRound(_mode.RoundSteps(unit, _planSteps).Count, _running.Length, m => _running.Fold(m.Span))
            : _log.FoldInOrder(s => _running.Fold(s));
        if (!folded)
            throw new InvalidOperationException($"Shard {_shard.Shard} applied step {unit} without every micro-batch's BatchNorm statistics.");
        _log.Begin(_shard.Version, _microBatches);
    }

    /// <summary>Async: the gradient of (step, micro-batch) was applied; fold its statistics now, in the order of the updates.</summary>
    public void MicroBatchApplied(long step, int microBatch)
    {
        if (!_log.FoldOne(step, microBatch, s => _running.Fold(s)))
            throw new InvalidOperationException($"Shard {_shard.Shard} applied step {step} micro-batch {microBatch} without its BatchNorm statistics.");
    }

    private static Span<float> RejectAll(out GradientDrop reason) { reason = GradientDrop.OutOfRange; return Span<float>.Empty; }

    // ---- checkpoint: send this shard's state at its current version ----

    public void Send(DataPlaneClient client, long version)
    {
        if (version != _shard.Version)
            throw new InvalidOperationException($"Shard {_shard.Shard} is at version {_shard.Version}; a checkpoint of version {version} was asked for.");
        KeepCopy();
        var r = _shard.Range;
        client.Send(new FrameHeader(FrameKind.Parameters, version, 0, version, _shard.Shard, r.Offset, r.Length, 0, 0), _shard.Values);
        var state = _shard.Optimizer.State;
        for (int i = 0; i < state.Count; i++)
            client.Send(new FrameHeader(FrameKind.OptimizerState, version, i, version, _shard.Shard, r.Offset, r.Length, 0, 0), state[i].Data);
        if (KeepsStatistics)
            client.Send(new FrameHeader(FrameKind.Buffers, version, 0, version, _shard.Shard, 0, _replica.Store.Buffers.Length, 0, 0), _replica.Store.Buffers);
    }

    // ---- resume: the coordinator sends the same frames back before step 0 of this run ----

    /// <summary>Where a restore frame goes (the coordinator's, on resume or when every shard rolls back to its replicated state
    /// after another shard was lost); empty when it is not one this shard expects (another range).</summary>
    public Span<float> RentRestore(FrameHeader h)
    {
        if (h.Shard != _shard.Shard) return Span<float>.Empty;
        if (_restore is null || _restore.Version != h.Version)
            _restore = new SnapshotAssembly(h.Version, [_shard.Range], _shard.Optimizer.State.Count, KeepsStatistics ? _replica.Store.Buffers.Length : 0);
        var staging = _restore.Stage(PartOf(h.Kind), h.Version, 0, h.MicroBatch, h.Offset, h.Length);
        return staging is null ? Span<float>.Empty : staging;
    }

    /// <summary>A restore frame verified; true when the whole state is here (then call <see cref="ApplyRestore"/> on the actor).</summary>
    public bool RestoreArrived(in FrameHeader h) => _restore is { } a && a.Version == h.Version && a.Arrived(PartOf(h.Kind), 0, h.MicroBatch);

    /// <summary>Puts the received state in place and begins collecting the step it was taken at; returns that version.</summary>
    public long ApplyRestore()
    {
        var a = _restore ?? throw new InvalidOperationException("No restore was received.");
        var (values, states) = a.RangeOf(0);
        Put(a.Version, values, states, KeepsStatistics ? a.Buffers : null);
        _restore = null;
        KeepCopy();
        return a.Version;
    }

    private void Put(long version, float[] values, IReadOnlyList<float[]> states, float[]? buffers)
    {
        _shard.Restore(values, version);
        var target = _shard.Optimizer.State;
        for (int i = 0; i < target.Count; i++) states[i].CopyTo(target[i].Data, 0);
        buffers?.CopyTo(_replica.Store.Buffers, 0);
        _shard.BeginStep(version, _microBatches);
        _log.Begin(_mode.Mode == TrainingMode.Async ? 0 : version, _microBatches);
        Restored = true;
    }

    // ---- copies kept here: a coordinator that takes over rolls every shard back to a version all of them hold ----

    private sealed record Copy(long Version, float[] Values, float[][] States, float[]? Buffers);
    private readonly List<Copy> _copies = [];   // oldest first
    private const int CopiesKept = 2;

    /// <summary>
    /// Keeps a copy of the state at the current version (done at every version sent to the coordinator: checkpoints and
    /// replicated states). When the coordinator's node dies, the one that takes over knows nothing of the shards' state and
    /// they may be a step apart (one applied a step whose last gradient the other has not received): it rolls them all back
    /// to the newest version every one of them holds. Two copies, because the shards do not keep them at the same moment.
    /// </summary>
    public void KeepCopy()
    {
        long version = _shard.Version;
        if (_copies.Any(c => c.Version == version)) return;
        var state = _shard.Optimizer.State;
        Copy copy;
        if (_copies.Count == CopiesKept)
        {
            // The oldest copy's arrays take the new one: same shapes, no allocation every replicated version.
            var old = _copies[0];
            _copies.RemoveAt(0);
            _shard.Values.CopyTo(old.Values, 0);
            for (int i = 0; i < state.Count; i++) state[i].Data.CopyTo(old.States[i], 0);
            if (old.Buffers is not null) _replica.Store.Buffers.CopyTo(old.Buffers, 0);
            copy = old with { Version = version };
        }
        else copy = new Copy(version, _shard.Values.ToArray(), state.Select(s => s.Data.ToArray()).ToArray(),
            KeepsStatistics ? _replica.Store.Buffers.ToArray() : null);
        _copies.Add(copy);
    }

    /// <summary>The versions this shard can roll back to without the coordinator: its copies and its current version.</summary>
    public long[] Versions() => _copies.Select(c => c.Version).Append(_shard.Version).Distinct().Order().ToArray();

    /// <summary>Puts back the state of <paramref name="version"/> (a copy, or the current one: then only the step's gradients
    /// received so far are dropped); false when this shard holds no such state.</summary>
    public bool RollBack(long version)
    {
        if (version == _shard.Version) KeepCopy();
        var copy = _copies.LastOrDefault(c => c.Version == version);
        if (copy is null) return false;
        Put(version, copy.Values, copy.States, copy.Buffers);
        _copies.RemoveAll(c => c.Version > version); // states of a future that will be computed again
        return true;
    }

    public static SnapshotPart PartOf(FrameKind kind) => kind switch
    {
        FrameKind.Parameters => SnapshotPart.Parameters,
        FrameKind.OptimizerState => SnapshotPart.OptimizerState,
        FrameKind.Buffers => SnapshotPart.Buffers,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a snapshot frame"),
    };
}
