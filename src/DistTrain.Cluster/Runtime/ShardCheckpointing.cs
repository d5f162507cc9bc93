// What a PS shard adds for checkpoints and BatchNorm buffers (DESIGN contracts 2 and 4): shard 0 keeps
// the model's running statistics, folding the workers' per-micro-batch statistics in micro-batch order
// when a step is applied; every shard sends its range, its optimizer state (and shard 0 the buffers) for
// a checkpoint, and takes them back from the coordinator when a run resumes. Called by
// ParameterServerActor under its lock; the frame handling stays there.
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;

namespace DistTrain.Cluster.Runtime;

public sealed class ShardCheckpointing
{
    private readonly ParameterShard _shard;
    private readonly Sequential _replica;        // its Buffers are the running statistics (meaningful on shard 0)
    private readonly RunningStatistics _running;
    private readonly StatisticsLog _log;
    private readonly int _microBatches;
    private SnapshotAssembly? _restore;
    private readonly bool _foldStatistics;

    /// <param name="foldStatistics">Sync mode: fold the workers' BatchNorm statistics (other modes have no micro-batch order to follow).</param>
    public ShardCheckpointing(ParameterShard shard, Sequential replica, int microBatches, bool foldStatistics = true)
    {
        _shard = shard;
        _replica = replica;
        _running = new RunningStatistics(replica);
        _foldStatistics = foldStatistics;
        _microBatches = microBatches;
        _log = new StatisticsLog(KeepsStatistics ? _running.Length : 0, microBatches);
        _log.Begin(shard.Version, microBatches);
    }

    /// <summary>Shard 0 of a model with BatchNorm layers: receives statistics and owns the buffers.</summary>
    public bool KeepsStatistics => _foldStatistics && _shard.Shard == 0 && _running.Length > 0;
    public bool Restored { get; private set; }

    // ---- BatchNorm statistics (worker → shard 0, before the micro-batch's gradient) ----

    /// <summary>A gradient of (step, micro-batch) may be kept only once its statistics are here.</summary>
    public bool StatisticsReady(long step, int microBatch) => _log.Has(step, microBatch);

    public Span<float> RentStatistics(FrameHeader h, out GradientDrop reason) =>
        KeepsStatistics ? _log.Reserve(h.Step, h.MicroBatch, h.Length, out reason) : RejectAll(out reason);

    public void StatisticsArrived(in FrameHeader h) => _log.Commit(h.Step, h.MicroBatch);
    public void StatisticsDropped(in FrameHeader h) => _log.Abort(h.Step, h.MicroBatch);

    /// <summary>The shard applied a step: fold its statistics in micro-batch order, then collect the next step's.</summary>
    public void StepApplied()
    {
        if (!_log.FoldInOrder(s => _running.Fold(s)))
            throw new InvalidOperationException($"Shard {_shard.Shard} applied step {_log.Step} without every micro-batch's BatchNorm statistics.");
        _log.Begin(_shard.Version, _microBatches);
    }

    private static Span<float> RejectAll(out GradientDrop reason) { reason = GradientDrop.OutOfRange; return Span<float>.Empty; }

    // ---- checkpoint: send this shard's state at its current version ----

    public void Send(DataPlaneClient client, long version)
    {
        if (version != _shard.Version)
            throw new InvalidOperationException($"Shard {_shard.Shard} is at version {_shard.Version}; a checkpoint of version {version} was asked for.");
        var r = _shard.Range;
        client.Send(new FrameHeader(FrameKind.Parameters, version, 0, version, _shard.Shard, r.Offset, r.Length, 0, 0), _shard.Values);
        var state = _shard.Optimizer.State;
        for (int i = 0; i < state.Count; i++)
            client.Send(new FrameHeader(FrameKind.OptimizerState, version, i, version, _shard.Shard, r.Offset, r.Length, 0, 0), state[i].Data);
        if (KeepsStatistics)
            client.Send(new FrameHeader(FrameKind.Buffers, version, 0, version, _shard.Shard, 0, _replica.Store.Buffers.Length, 0, 0), _replica.Store.Buffers);
    }

    // ---- resume: the coordinator sends the same frames back before step 0 of this run ----

    /// <summary>Where a restore frame goes; empty when it is not one this shard expects (training already began, wrong range).</summary>
    public Span<float> RentRestore(FrameHeader h)
    {
        if (Restored || _shard.Version != 0 || h.Shard != _shard.Shard) return Span<float>.Empty;
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
        _shard.Restore(values, a.Version);
        var target = _shard.Optimizer.State;
        for (int i = 0; i < target.Count; i++) states[i].CopyTo(target[i].Data, 0);
        if (KeepsStatistics) a.Buffers.CopyTo(_replica.Store.Buffers, 0);
        _shard.BeginStep(a.Version, _microBatches);
        _log.Begin(a.Version, _microBatches);
        Restored = true;
        _restore = null;
        return a.Version;
    }

    public static SnapshotPart PartOf(FrameKind kind) => kind switch
    {
        FrameKind.Parameters => SnapshotPart.Parameters,
        FrameKind.OptimizerState => SnapshotPart.OptimizerState,
        FrameKind.Buffers => SnapshotPart.Buffers,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a snapshot frame"),
    };
}
