// A worker's model replica and data plane (IReplica, driven by WorkerCore): builds the job's model and loads the
// node's copy of the dataset, takes the shards' pushes in (ParameterInbox) and computes micro-batches on exactly
// the version an assignment names, sending each shard its range of the gradient (DESIGN contracts 2, 3).
// The mode's way of holding a version is chosen once: sync takes it layer by layer as the forward needs it
// (gated) and streams the gradient as the backward makes it final; local-sgd takes it whole and runs a chunk of
// local steps (LocalSgdChunk), sending the parameter delta; async refreshes to the newest pushed values and waits
// only when they are older than the assignment's minimum.
using System.Diagnostics;
using DistTrain.Cluster.Cores;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Data;
using DistTrain.Data.Plans;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Runtime;

/// <summary>A PS shard this worker needs cannot be reached, or its pushes stopped mid-version: the micro-batch is given up.</summary>
public sealed class ShardLostException(string message) : Exception(message);

public sealed class WorkerReplica : IReplica, IDisposable
{
    private static readonly TimeSpan ParameterWaitLimit = TimeSpan.FromMinutes(2);

    private readonly string _workerId, _nodeAddress;
    private NodeEndpoints _endpoints;
    private readonly int _senderId;
    private readonly ParameterInbox _inbox;   // the shards' pushes arrive there (receive threads)
    private JobDescription _job = null!;
    private Trainer _trainer = null!;
    private Dataset _train = null!;
    private ModeOptions _mode = ModeOptions.Sync;
    private DataPlaneServer? _server;
    private ShardInfo[] _shards = [];
    private DataPlaneClient?[] _clients = [];
    private DataPlaneKey[] _shardKeys = [];   // per shard: this worker's key toward its listener (ShardInfo.Key)
    private Func<long, (bool Ready, bool Stale)> _takeVersion = _ => (false, false);
    private LocalSgdChunk? _local;
    private EpochPlan? _plan;
    private RunningStatistics? _statistics;   // BatchNorm batch statistics, sent to shard 0 with each micro-batch
    private float[] _statisticsBuffer = [];
    private long[] _modelShardVersion = [];   // async: the version of each shard's range the model holds
    // Sync, gated: the version the forward takes layer by layer as its frames arrive, and how far the model holds it.
    private long _gateVersion = -1;
    private int _copiedTo;
    private long _gateWaitTicks;
    // The micro-batch whose gradient goes out while the backward still runs, and per shard the start of the part of
    // its range sent so far; a shard's range goes in chunks of at least _endpoints.GradientChunkFloats.
    private WorkAssignment? _streaming;
    private long[] _sentFrom = [];
    private bool _statisticsSent;
    private long _streamedBytes, _streamTicks, _waitStarted;
    private double _waitMs;
    private (double Loss, int Samples, int Correct, double ComputeMs) _computed;
    private string? _abandoned;               // why the micro-batch being computed was given up (a shard was lost), or null
    private bool _passed;                     // ... because another copy completed its step first (not a lost shard)
    private GradientCompression _compression;   // the job's: each gradient frame is encoded (GradientCodec) into _encoded
    private byte[] _encoded = [];
    private ErrorFeedback? _feedback;            // topk: this worker's residual, and how far down it is applied to the gradient
    private long _fedFrom;

    /// <summary>`--simulate-compute`: wait a micro-batch's time and send a fixed gradient pattern instead of computing (null = compute).</summary>
    public SimulateComputeOption? Simulate { get; init; }
    private SimulatedCompute? _simulated;

    /// <summary>Says that a micro-batch was dropped because a shard was lost (the actor logs it).</summary>
    public Action<string>? Abandoned { get; init; }

    /// <param name="parametersArrived">Called on a receive thread after each parameter frame.</param>
    public WorkerReplica(string workerId, string nodeAddress, NodeEndpoints endpoints, Action parametersArrived)
    {
        (_workerId, _nodeAddress, _endpoints) = (workerId, nodeAddress, endpoints);
        _senderId = JobMapping.SenderIdOf(workerId);
        _inbox = new ParameterInbox(parametersArrived);
    }

    public long ModelVersion { get; private set; } = -1;

    public RegisterWorker Build(JobDescription job)
    {
        _job = job;
        _endpoints = _endpoints with { Key = DataPlaneKey.FromWire(job.DataKey) };
        var train = JobMapping.ToTrainJob(job);
        var spec = train.Spec();
        _train = DistTrain.Data.Sources.DatasetSpec.Parse(train.Dataset).Load().Train;
        if (ClusterNode.DatasetMismatch(job.Dataset, _train) is { } other) throw new DatasetMismatchException(other);
        var model = spec.Build((ulong)(uint)train.Seed);
        _trainer = train.CreateTrainer(_train.Count, model);
        _mode = JobMapping.ModeOf(job);
        _compression = GradientCodec.Parse(train.Compression);
        _feedback = _compression == GradientCompression.TopK ? new ErrorFeedback(model.ParameterCount) : null;
        _statistics = new RunningStatistics(model);
        if (Simulate is { } simulate)
            _simulated = SimulatedCompute.Start(simulate, _trainer, _train, train.Seed, job.Hyper.BatchSize, job.Hyper.MicroBatchSize, train.TotalSteps(_train.Count));
        // Every mode: shard 0 folds them in the order its mode applies work (ShardCheckpointing.cs).
        _statisticsBuffer = new float[ShardCheckpointing.FrameLength(_statistics, _mode)];
        _takeVersion = TakeWhole;
        if (_mode.Mode == TrainingMode.LocalSgd)
            _local = new LocalSgdChunk(_trainer, _train, _mode, train.Seed, job.Hyper.BatchSize, job.Hyper.MicroBatchSize,
                train.TotalSteps(_train.Count), train.CreateSchedule(_train.Count));
        else if (_mode.Mode == TrainingMode.Async) _takeVersion = v => (Refresh(v), false);
        else if (_endpoints.GradientChunkFloats > 0)
        {
            model.GradientReady = OnGradientReady;
            model.ParametersNeeded = OnParametersNeeded;
            _takeVersion = BeginVersion;
        }
        _server = _endpoints.Listen(_inbox);
        return new RegisterWorker(_workerId, _nodeAddress, _endpoints.AdvertisedHost, _server.Port, WireProtocol.Version, spec.Hash);
    }

    public string? Connect(ShardLayout layout)
    {
        if (layout.TilingError() is { } bad) return bad;
        // Again after a shard was replaced: the layout names its new owner, and every shard starts over from the version
        // the coordinator rolled back to, which may be older than anything this replica holds.
        foreach (var c in _clients) c?.Dispose();
        ModelVersion = -1;
        _gateVersion = -1;
        _shards = layout.Shards;
        _inbox.Configure(_shards, layout.ParameterCount, stepBarrier: _mode.Mode != TrainingMode.Async);
        _modelShardVersion = _shards.Select(_ => -1L).ToArray();
        _sentFrom = _shards.Select(s => s.Offset + s.Length).ToArray();
        _shardKeys = _shards.Select(s => DataPlaneKey.FromWire(s.Key)).ToArray();
        _clients = _shards.Select(TryConnect).ToArray();
        return null;
    }

    /// <summary>A shard that cannot be reached now (its process just died and a spare is taking its range over) is tried again
    /// at the first frame for it (SendTo), whose failure gives the micro-batch up like any lost shard's.</summary>
    private DataPlaneClient? TryConnect(ShardInfo s, int i)
    {
        try { return _endpoints.Connect(s.DataHost, s.DataPort, _senderId, _shardKeys[i]); }
        catch (IOException e)
        {
            Abandoned?.Invoke($"Worker {_workerId}: PS shard {s.Shard} at {s.DataHost}:{s.DataPort} cannot be reached yet ({e.Message}); tried again at its first frame");
            return null;
        }
    }

    public bool Ready(WorkAssignment work, out bool stale)
    {
        (bool ready, stale) = ModelVersion == work.Version && _mode.Mode != TrainingMode.Async ? (true, false) : _takeVersion(work.Version);
        if (!ready && !stale && _waitStarted == 0) _waitStarted = Stopwatch.GetTimestamp();
        if (ready && _waitStarted != 0) { _waitMs += Stopwatch.GetElapsedTime(_waitStarted).TotalMilliseconds; _waitStarted = 0; }
        return ready;
    }

    /// <summary>
    /// Computes micro-batch work.MicroBatch of work.Step on the values the model holds. Sync: the gradient is this
    /// micro-batch's share of the step's mean (sum over 1/B). Async: the micro-batch mean (sum over 1/M); the shard applies
    /// it with the rate scaled by M/B (ParameterShard.ApplyMicroBatch). Local-sgd: chunk work.MicroBatch of round work.Step.
    /// </summary>
    public void Compute(WorkAssignment work)
    {
        if (work.Step >= FailsAtStep)
            throw new InvalidOperationException($"test hook DISTTRAIN_TEST_FAIL_AT_STEP: failing on step {work.Step}, micro-batch {work.MicroBatch}");
        var t0 = Stopwatch.GetTimestamp();
        if (_local is not null)
        {
            var (loss, correct, samples) = _simulated?.LocalChunk(_trainer.Model, _mode, work.Step, work.MicroBatch)
                ?? _local.Run(work.Step, work.MicroBatch, _statistics, _statisticsBuffer);
            _computed = (loss, samples, correct, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            ModelVersion = -1; // the replica now holds θ_local: the next chunk starts again from the pushed θ_r
            BeginGradient(null);
            return;
        }
        bool async = _mode.Mode == TrainingMode.Async;
        int stepsPerEpoch = EpochPlan.CountSteps(_train.Count, _job.Hyper.BatchSize);
        var (epoch, stepInEpoch) = EpochPlan.Locate(work.Step, stepsPerEpoch);
        if (_plan is null || _plan.Epoch != epoch)
            _plan = EpochPlan.Create((int)_job.Hyper.Seed, epoch, _train.Count, _job.Hyper.BatchSize, _job.Hyper.MicroBatchSize);
        var mb = _plan.MicroBatches(stepInEpoch)[work.MicroBatch];
        float scale = async ? 1f / _job.Hyper.MicroBatchSize : 1f / _plan.StepSize(stepInEpoch);
        BeginGradient(async ? null : work);
        _gateWaitTicks = 0;
        (_abandoned, _passed) = (null, false);
        double l; int c;
        try
        {
            (l, c) = _simulated?.MicroBatch(_trainer.Model, mb.Size, work.Step, work.MicroBatch)
                ?? _trainer.ComputeGradient(_train, _plan.Indices(mb), scale, work.Step, work.MicroBatch);
        }
        catch (Exception e) when (e is ShardLostException or DistTrain.Cluster.Training.VersionPassedException)
        {
            // A shard died while this micro-batch waited for its parameters or sent its gradient (the coordinator rolls every shard
            // back and hands the work out again), or another copy completed its step first (a backup of this worker, behind a
            // slow link): this copy is dropped rather than crashing the worker.
            (_abandoned, _passed, _gateVersion, _streaming, ModelVersion) = (e.Message, e is not ShardLostException, -1, null, -1);
            return;
        }
        // Async --clip-norm: each micro-batch is its own update, and its whole gradient is here (sync clips on the shards).
        if (async && _trainer.Options.ClipNorm > 0) DistTrain.Nn.Optimizers.GradientClipping.ClipByGlobalNorm(_trainer.Model.Store.Grads, _trainer.Options.ClipNorm);
        _streaming = null;
        if (_gateVersion >= 0) EndVersion();
        _waitMs += Stopwatch.GetElapsedTime(0, _gateWaitTicks).TotalMilliseconds;
        double computeMs = (Stopwatch.GetElapsedTime(t0) - Stopwatch.GetElapsedTime(0, _streamTicks + _gateWaitTicks)).TotalMilliseconds;
        _computed = (l, mb.Size, c, computeMs);
    }

    public MicroBatchDone? Flush(WorkAssignment work)
    {
        var t1 = Stopwatch.GetTimestamp();
        long bytes;
        try
        {
            if (_abandoned is not null) throw new ShardLostException(_abandoned);
            bytes = SendGradient(work, perShardVersion: _mode.Mode == TrainingMode.Async, 0, final: true) + _streamedBytes;
        }
        catch (ShardLostException e)
        {
            // A copy another worker completed first is expected (the coordinator counts backup copies); a lost shard is said.
            if (!_passed) Abandoned?.Invoke($"Worker {_workerId} dropped step {work.Step} micro-batch {work.MicroBatch}: {e.Message}; it is computed again once the shard is replaced");
            (_abandoned, _waitMs) = (null, 0);
            BeginGradient(null);
            return null;
        }
        double commMs = (Stopwatch.GetElapsedTime(t1) + Stopwatch.GetElapsedTime(0, _streamTicks)).TotalMilliseconds;
        var (loss, samples, correct, computeMs) = _computed;
        var done = new MicroBatchDone(_workerId, work.Step, work.MicroBatch, loss, samples, correct, computeMs, commMs, _waitMs, bytes);
        _waitMs = 0;
        BeginGradient(null);
        return done;
    }

    /// <summary>Resets the per-micro-batch send state; with <paramref name="streamed"/> set, the backward's progress
    /// (OnGradientReady) sends that micro-batch's gradient chunks as they become final.</summary>
    private void BeginGradient(WorkAssignment? streamed)
    {
        _streaming = streamed;
        for (int s = 0; s < _shards.Length; s++) _sentFrom[s] = _shards[s].Offset + _shards[s].Length;
        _statisticsSent = false;
        _fedFrom = _trainer.Model.Store.Count;
        _streamedBytes = 0;
        _streamTicks = 0;
    }

    /// <summary>Sequential.GradientReady (compute thread, during the backward): the gradient from <paramref name="finalFrom"/>
    /// to the end is final. Sends it (chunks of at least GradientChunkFloats) so the shard receives and checks it meanwhile.</summary>
    private void OnGradientReady(int finalFrom)
    {
        if (_streaming is not { } w) return; // not computing for the cluster
        var t0 = Stopwatch.GetTimestamp();
        _streamedBytes += SendGradient(w, perShardVersion: false, finalFrom, final: false);
        _streamTicks += Stopwatch.GetTimestamp() - t0;
    }

    /// <summary>
    /// Sends each shard the unsent part of its range from <paramref name="finalFrom"/> on (final: all of it, at least one frame
    /// per shard even for an empty range; else only parts of at least GradientChunkFloats), the BatchNorm statistics before the
    /// first frame. Returns the bytes sent.
    /// </summary>
    private long SendGradient(WorkAssignment w, bool perShardVersion, long finalFrom, bool final)
    {
        long bytes = 0;
        var grads = _trainer.Model.Store.Grads;
        // topk: fold the residual into the blocks that became final, once per micro-batch, before any of them is encoded.
        long encodable = final ? finalFrom : GradientCodec.EncodableFrom(_compression, finalFrom);
        if (_feedback is not null && encodable < _fedFrom)
        {
            _feedback.Apply(grads, (int)encodable, (int)_fedFrom);
            _fedFrom = encodable;
        }
        for (int s = 0; s < _shards.Length; s++)
        {
            var info = _shards[s];
            // int8 / topk: a frame starts where every block it touches is final (its scale or top-k is over the whole block).
            long end = info.Offset + info.Length, lo = Math.Max(encodable, info.Offset), hi = _sentFrom[s];
            bool nothingSent = hi == end;
            if (final ? lo >= hi && !nothingSent : hi - lo < _endpoints.GradientChunkFloats) continue;
            if (!_statisticsSent) { bytes += SendStatistics(w); _statisticsSent = true; }
            // Async: the header carries the version of this shard's range the gradient was computed on (for its staleness).
            long version = perShardVersion ? _modelShardVersion[s] : w.Version;
            if (CorruptsGradients && hi > lo) FlipLowestBit(grads, (int)lo);
            var h = new FrameHeader(FrameHeader.GradientKind(_compression), w.Step, w.MicroBatch, version, info.Shard, lo, (int)(hi - lo), 0, 0);
            bytes += SendGradientFrame(s, h, grads);
            _sentFrom[s] = lo;
        }
        return bytes;
    }

    /// <summary>A test hook for the determinism audit (DISTTRAIN_TEST_CORRUPT_GRADIENTS=1): this worker flips the lowest bit of
    /// the first value of every gradient frame it sends, as a faulty host would, so the shards' comparison must name it.</summary>
    private static readonly bool CorruptsGradients = Environment.GetEnvironmentVariable("DISTTRAIN_TEST_CORRUPT_GRADIENTS") == "1";

    /// <summary>A test hook for a role whose core throws (DISTTRAIN_TEST_FAIL_AT_STEP=N): this worker throws when it starts a
    /// micro-batch of step N or later, as a bug would; the actor must stop and its node exit for its supervisor (ActorEffects.Fail).</summary>
    private static readonly long FailsAtStep = long.TryParse(Environment.GetEnvironmentVariable("DISTTRAIN_TEST_FAIL_AT_STEP"), out long n) ? n : long.MaxValue;

    private static void FlipLowestBit(float[] values, int at) => values[at] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(values[at]) ^ 1);

    /// <summary>Sends the frame <paramref name="h"/> names of the flat gradient, float32 or encoded; returns its payload bytes.</summary>
    private long SendGradientFrame(int s, in FrameHeader h, float[] grads)
    {
        if (_compression == GradientCompression.None)
        {
            SendTo(s, h, grads.AsSpan((int)h.Offset, h.Length));
            return (long)h.Length * sizeof(float);
        }
        long need = h.PayloadBytes;
        if (_encoded.Length < need) _encoded = new byte[need];
        int n = GradientCodec.Encode(_compression, grads, (int)h.Offset, h.Length, _encoded);
        SendTo(s, h, default, _encoded.AsSpan(0, n));
        return n;
    }

    /// <summary>
    /// Sends the micro-batch's BatchNorm statistics to shard 0 ahead of its gradient on the same connection, so the shard
    /// holds them whenever it holds the gradient and folds them in micro-batch order (ShardCheckpointing.cs).
    /// </summary>
    private long SendStatistics(WorkAssignment w)
    {
        if (_statisticsBuffer.Length == 0) return 0;
        if (_local is null) _statistics!.Gather(_statisticsBuffer); // local-sgd: the chunk gathered one vector per local step
        int s = Array.FindIndex(_shards, x => x.Shard == 0);
        var h = new FrameHeader(FrameKind.Statistics, w.Step, w.MicroBatch, w.Version, 0, 0, _statisticsBuffer.Length, 0, 0);
        SendTo(s, h, _statisticsBuffer);
        return (long)_statisticsBuffer.Length * sizeof(float);
    }

    /// <summary>
    /// Sends a frame to shard <paramref name="s"/>. A connection the shard closed (it gave this worker's half-sent frame up when
    /// the lease moved on while this process was paused, or it restarted its listener) is opened again and the frame sent once
    /// more; the shard drops it if another worker's copy came first. Throws when the shard cannot be reached at all.
    /// </summary>
    private void SendTo(int s, in FrameHeader header, ReadOnlySpan<float> payload, ReadOnlySpan<byte> encoded = default)
    {
        try
        {
            if (_clients[s] is { } client) { Send(client, header, payload, encoded); return; }
        }
        catch (IOException) { }
        _clients[s]?.Dispose();
        _clients[s] = null;
        try
        {
            _clients[s] = _endpoints.Connect(_shards[s].DataHost, _shards[s].DataPort, _senderId, _shardKeys[s]);
            Send(_clients[s]!, header, payload, encoded);
        }
        catch (IOException e)
        {
            throw new ShardLostException($"PS shard {_shards[s].Shard} at {_shards[s].DataHost}:{_shards[s].DataPort} cannot be reached ({e.Message})");
        }
    }

    private static void Send(DataPlaneClient client, in FrameHeader header, ReadOnlySpan<float> payload, ReadOnlySpan<byte> encoded)
    {
        if (header.Encoding == GradientCompression.None) client.Send(header, payload);
        else client.SendEncoded(header, encoded);
    }

    /// <summary>Sync and local-sgd: copies the pushed values into the model when every shard has exactly <paramref name="version"/>.</summary>
    private (bool, bool) TakeWhole(long version)
    {
        if (!_inbox.TryTakeAll(version, _trainer.Model.Store.Values, out bool stale)) return (false, stale);
        ModelVersion = version;
        return (true, false);
    }

    /// <summary>Async: copies every shard's newest pushed range into the model when all are at least <paramref name="minVersion"/>.</summary>
    private bool Refresh(long minVersion)
    {
        long oldest = _inbox.TryRefresh(minVersion, _trainer.Model.Store.Values, _modelShardVersion);
        if (oldest < 0) return false;
        ModelVersion = oldest;
        return true;
    }

    /// <summary>
    /// Sync, gated: true when every shard has begun pushing exactly <paramref name="version"/>; the forward then takes each
    /// layer's values as they arrive (OnParametersNeeded) instead of waiting for all of them.
    /// </summary>
    private (bool, bool) BeginVersion(long version)
    {
        if (!_inbox.AllBegun(version, out bool stale)) return (false, stale);
        _gateVersion = version;
        _copiedTo = 0;
        ModelVersion = -1; // the model is a mix until EndVersion: nothing but the gated forward may read it
        return (true, false);
    }

    /// <summary>Sequential.ParametersNeeded (compute thread, before a layer's forward): the values below
    /// <paramref name="to"/> must be those of the version being computed on; waits for their frames if need be.</summary>
    private void OnParametersNeeded(int to)
    {
        if (_gateVersion < 0 || to <= _copiedTo) return;
        TakeArrived(_copiedTo, to);
        _copiedTo = to;
    }

    /// <summary>After the gated forward: the rest of the version, then the model holds that version whole.</summary>
    private void EndVersion()
    {
        if (_copiedTo < _inbox.Length) TakeArrived(_copiedTo, _inbox.Length);
        ModelVersion = _gateVersion;
        _gateVersion = -1;
    }

    private void TakeArrived(int from, int to)
    {
        try { _gateWaitTicks += _inbox.TakeRange(_gateVersion, from, to, _trainer.Model.Store.Values, ParameterWaitLimit); }
        catch (TimeoutException e) { throw new TimeoutException($"Worker {_workerId} {e.Message}", e); }
    }

    public void Dispose()
    {
        _server?.Dispose();
        foreach (var c in _clients) c?.Dispose();
    }
}
