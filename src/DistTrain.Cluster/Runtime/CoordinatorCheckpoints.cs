// The coordinator's side of checkpoints and resume (DESIGN contract 4): for a step boundary it asks every
// shard for its range, optimizer state and (shard 0) the BatchNorm buffers, receives them over its own
// data-plane server, and writes DIR/checkpoint/step-N in the one-process format (CheckpointSeries); on
// resume it sends each shard its slice of the checkpoint before the first step. Frames arrive on
// receive threads; completion is reported through the callback, which the actor turns into a message. A range's frames
// are taken only from the sender id of the shard it is assigned to (ShardAssigned).
using System.Net;
using DistTrain.Training.Checkpoints;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Runtime;

public sealed class CoordinatorCheckpoints : IFrameHandler, IDisposable
{
    private readonly TrainJob _job;
    private readonly KeyRange[] _ranges;
    private NodeEndpoints _endpoints;
    private readonly Action<long> _onComplete;
    private readonly Sequential _replica;      // holds collected weights and buffers for writing
    private readonly string[] _stateNames;
    private readonly string _optimizerDescription;
    private readonly int _buffersLength;        // 0 when the model has no running statistics
    private readonly ModeOptions _mode;
    private DataPlaneServer? _server;
    private JobKeys? _keys;
    private readonly int[] _owners;             // per shard: the sender id of the node it is assigned to, -1 while none
    // Snapshots in flight by version: the shards may be asked for two upcoming versions at once.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, SnapshotAssembly> _snapshots = new();

    /// <param name="statistics">Whether shard 0 keeps the BatchNorm buffers (it does in every mode); false keeps the model's initial ones.</param>
    /// <param name="mode">Which optimizer the shards run and send the state of (OuterOptimizer.ForShard): the job's, or in
    /// local-sgd the outer one (plain averaging holds none; outer Nesterov its momentum buffer).</param>
    public CoordinatorCheckpoints(TrainJob job, KeyRange[] ranges, NodeEndpoints endpoints, Action<long> onComplete, bool statistics = true,
        ModeOptions? mode = null)
    {
        _job = job;
        _ranges = ranges;
        _endpoints = endpoints;
        _onComplete = onComplete;
        _mode = mode ?? ModeOptions.Sync;
        _replica = job.Spec().Build((ulong)(uint)job.Seed);
        var optimizer = OuterOptimizer.ForShard(job, _mode, 1, 1);
        _stateNames = optimizer.State.Select(s => s.Name).ToArray();
        _optimizerDescription = optimizer.ToString();
        _buffersLength = statistics && new RunningStatistics(_replica).Length > 0 ? _replica.Store.Buffers.Length : 0;
        _owners = Enumerable.Repeat(-1, ranges.Length).ToArray();
    }

    /// <summary>How the run trains (the mode), written into every checkpoint's metadata.</summary>
    public IReadOnlyDictionary<string, string> RunMetadata { get; init; } = new Dictionary<string, string>();
    public string OptimizerDescription => _optimizerDescription;

    /// <summary>The collected optimizer state, one buffer per state name joined in key order (none in plain local-sgd).</summary>
    public (string Name, float[] Data)[] CollectedState(long version)
    {
        var s = Get(version);
        return _stateNames.Select((n, i) => (n, s.JoinState(i))).ToArray();
    }

    /// <summary>An injected fault (tests): asked for each incoming frame, true drops it as if the shard's send had failed.</summary>
    public Func<bool>? DropFrame { get; init; }

    /// <summary>The job's data-plane keys, before the first Ask or SendRestore: the listener takes the coordinator's listener key.</summary>
    public void UseKeys(JobKeys keys)
    {
        _keys = keys;
        _endpoints = _endpoints with { Key = keys.Listener(JobMapping.CoordinatorSenderId) };
    }

    /// <summary>Shard <paramref name="shard"/>'s range is assigned to the node whose sender id is <paramref name="senderId"/> (-1: to
    /// none): its checkpoint frames are taken from that sender only, so a member cannot write another shard's range of a checkpoint.</summary>
    public void ShardAssigned(int shard, int senderId) => Volatile.Write(ref _owners[shard], senderId);

    /// <summary>Starts collecting the state at <paramref name="version"/>; tell every shard the returned message.</summary>
    public SendCheckpoint Begin(long version)
    {
        _snapshots[version] = new SnapshotAssembly(version, _ranges, _stateNames.Length, _buffersLength);
        return Ask(version);
    }

    /// <summary>Where this coordinator's data-plane listener is (started if it is not yet): standby coordinators watch it.</summary>
    public (string Host, int Port) Listener()
    {
        _server ??= _endpoints.Listen(this);
        return (_endpoints.AdvertisedHost, _server.Port);
    }

    /// <summary>What the listener refused (null before it listens).</summary>
    public DataPlaneStats? Stats => _server?.Stats;

    /// <summary>The message that asks the shards for <paramref name="version"/> (again: what already arrived is kept).</summary>
    public SendCheckpoint Ask(long version)
    {
        _server ??= _endpoints.Listen(this);
        return new SendCheckpoint(_endpoints.AdvertisedHost, _server.Port, version);
    }

    /// <summary>The collected weights and buffers (the initial buffers when the model keeps none).</summary>
    public (float[] Values, float[] Buffers) Collected(long version)
    {
        var s = Get(version);
        return (s.JoinValues(), _buffersLength > 0 ? s.Buffers : _replica.Store.Buffers.ToArray());
    }

    /// <summary>Writes the collected state as DIR/checkpoint/step-N; returns the folder.</summary>
    /// <param name="firstStep">The plan step <paramref name="version"/> begins (local-sgd versions count rounds, async ones micro-batches).</param>
    public string Write(string outDir, int stepsPerEpoch, long version, long firstStep)
    {
        var s = Get(version);
        var (values, buffers) = Collected(version);
        values.CopyTo(_replica.Store.Values, 0);
        buffers.CopyTo(_replica.Store.Buffers, 0);
        int epoch = stepsPerEpoch == 0 ? 0 : (int)(firstStep / stepsPerEpoch);
        return CheckpointSeries.Write(outDir, _job, _replica.Store, CollectedState(version), _optimizerDescription, s.Version, epoch, RunMetadata);
    }

    /// <summary>The collected state at <paramref name="version"/> as a point the shards can be restored to.</summary>
    public ResumePoint PointOf(long version)
    {
        var (values, buffers) = Collected(version);
        return new ResumePoint("(replicated in the coordinator's memory)", version, 0, values, buffers, CollectedState(version));
    }

    /// <summary>The run's state before step 0: the seeded initial weights and buffers with a zero optimizer state.</summary>
    public ResumePoint InitialPoint()
    {
        var model = _job.Spec().Build((ulong)(uint)_job.Seed);
        var state = _stateNames.Length == 0 ? []
            : OuterOptimizer.ForShard(_job, _mode, model.Store.Values.Length, 1).State.Select(s => (s.Name, s.Data.ToArray())).ToArray();
        return new ResumePoint("(initial weights)", 0, 0, model.Store.Values.ToArray(), model.Store.Buffers.ToArray(), state);
    }

    /// <summary>Forgets a snapshot once it was used.</summary>
    public void Release(long version) => _snapshots.TryRemove(version, out _);

    private SnapshotAssembly Get(long version) =>
        _snapshots.TryGetValue(version, out var s) ? s : throw new InvalidOperationException($"No checkpoint of version {version} was collected.");

    /// <summary>Sends shard <paramref name="shard"/> its slice of <paramref name="point"/> (it answers ShardRestored).</summary>
    public void SendRestore(ResumePoint point, ShardInfo shard)
    {
        var r = _ranges[shard.Shard];
        long v = point.Step;
        var keys = _keys ?? throw new InvalidOperationException("The coordinator's data-plane keys are not set (UseKeys).");
        int sender = JobMapping.CoordinatorSenderId;
        using var client = _endpoints.Connect(shard.DataHost, shard.DataPort, sender, keys.Peer(JobMapping.ShardSenderId(shard.OwnerAddress, shard.Shard), sender));
        client.Send(new FrameHeader(FrameKind.Parameters, v, 0, v, shard.Shard, r.Offset, r.Length, 0, 0), point.Values.AsSpan(r.Offset, r.Length));
        for (int i = 0; i < point.OptimizerState.Count; i++)
            client.Send(new FrameHeader(FrameKind.OptimizerState, v, i, v, shard.Shard, r.Offset, r.Length, 0, 0),
                point.OptimizerState[i].Data.AsSpan(r.Offset, r.Length));
        if (shard.Shard == 0 && _buffersLength > 0)
            client.Send(new FrameHeader(FrameKind.Buffers, v, 0, v, 0, 0, _buffersLength, 0, 0), point.Buffers);
    }

    DropReason? IFrameHandler.Rent(FrameHeader header, out Span<float> destination)
    {
        destination = Span<float>.Empty;
        _snapshots.TryGetValue(header.Version, out var s);
        if (s is null || header.Kind is not (FrameKind.Parameters or FrameKind.OptimizerState or FrameKind.Buffers)) return DropReason.Rejected;
        if ((uint)header.Shard >= (uint)_owners.Length || header.SenderId != Volatile.Read(ref _owners[header.Shard])) return DropReason.NotPermitted;
        if (DropFrame?.Invoke() == true) return DropReason.Rejected;
        var staging = s.Stage(ShardCheckpointing.PartOf(header.Kind), header.Version, header.Shard, header.MicroBatch, header.Offset, header.Length);
        if (staging is null) return DropReason.WrongLength;
        destination = staging;
        return null;
    }

    void IFrameHandler.OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
    {
        if (_snapshots.TryGetValue(header.Version, out var s) && s.Arrived(ShardCheckpointing.PartOf(header.Kind), header.Shard, header.MicroBatch))
            _onComplete(s.Version);
    }

    public void Dispose() => _server?.Dispose();
}
