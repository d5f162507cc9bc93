// A worker's receive side for parameter pushes: data-plane threads hand it each shard's frames, and the worker
// takes a version into its model from here — whole, layer by layer as the forward needs it (waiting for frames
// still on their way), or per shard (async). It owns the lock and the wait that the receive threads and the
// compute thread share; the actor holds neither.
// With a step barrier (sync, local-sgd) a frame is received straight into the buffer of its version's parity: the
// version being read and the one arriving never share a buffer, since version v+2 cannot exist before this worker's
// gradient on v has gone out. So a version reaches the model with one copy in user space. Async has no such bound
// (shards push every update), so there a frame is staged until its checksum is verified and then kept as the newest.
using System.Diagnostics;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Training;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Runtime;

public sealed class ParameterInbox(Action arrived) : IFrameHandler
{
    private readonly Lock _gate = new();
    private readonly object _pulse = new();   // pulsed by the receive threads after each parameter frame
    private ShardInfo[] _shards = [];
    private int[] _owners = [];               // per shard: the sender id of its owner's pushes (JobMapping.ShardSenderId)
    private bool _direct;                     // a step barrier bounds the versions in flight: receive into _slots
    private float[][] _slots = [];            // direct: [v & 1] holds version v where it has arrived
    private float[][] _staging = [];          // async, per shard: receive buffer (written before the checksum is checked)
    private float[] _pending = [];            // async: newest pushed values per shard
    private ParameterArrivals _arrivals = new([]);   // which version of each shard's range has arrived, and how much
    private volatile bool _peerLost;          // a shard's push connection ended and no frame came since: a wait may never end

    public int Length { get; private set; }

    /// <summary>The shard layout the coordinator accepted this worker with; <paramref name="stepBarrier"/> for sync and
    /// local-sgd, whose workers never compute on a version older than the newest but one.</summary>
    public void Configure(ShardInfo[] shards, long parameterCount, bool stepBarrier)
    {
        lock (_gate)
        {
            _shards = shards;
            _owners = shards.Select(s => JobMapping.ShardSenderId(s.OwnerAddress, s.Shard)).ToArray();
            _direct = stepBarrier;
            Length = (int)parameterCount;
            _slots = stepBarrier ? [new float[parameterCount], new float[parameterCount]] : [];
            _staging = stepBarrier ? [] : shards.Select(s => new float[s.Length]).ToArray();
            _pending = stepBarrier ? [] : new float[parameterCount];
            _arrivals = new ParameterArrivals(shards.Select(s => new KeyRange((int)s.Offset, s.Length)).ToArray());
            _peerLost = false;
        }
    }

    /// <summary>Whether every shard has begun pushing exactly <paramref name="version"/>; stale when one is already past it.</summary>
    public bool AllBegun(long version, out bool stale)
    {
        lock (_gate) return _arrivals.AllBegun(version, out stale);
    }

    /// <summary>Copies the whole of <paramref name="version"/> into <paramref name="model"/> once every shard's range of it is here.</summary>
    public bool TryTakeAll(long version, Span<float> model, out bool stale)
    {
        lock (_gate)
        {
            if (!_arrivals.AllComplete(version, out stale)) return false;
            Values(version).CopyTo(model);
            return true;
        }
    }

    /// <summary>
    /// Copies [from, to) of <paramref name="version"/> into <paramref name="model"/>, waiting for its frames (at most
    /// <paramref name="limit"/>, then a TimeoutException naming the range). Returns the Stopwatch ticks spent waiting.
    /// </summary>
    public long TakeRange(long version, int from, int to, float[] model, TimeSpan limit)
    {
        long started = 0;
        lock (_pulse)
        {
            while (!TryCopy(version, from, to, model))
            {
                // The shard died (or the coordinator is replacing one): the coordinator hands the work out again, so stop waiting.
                if (_peerLost)
                    throw new ShardLostException($"a PS shard's push connection ended while this worker waited for parameters [{from}, {to}) of version {version}");
                if (started == 0) started = Stopwatch.GetTimestamp();
                else if (Stopwatch.GetElapsedTime(started) > limit)
                    throw new TimeoutException($"waited {limit.TotalSeconds:0} s for parameters [{from}, {to}) of version {version}; is a PS shard gone?");
                Monitor.Wait(_pulse, 1000); // the receive thread pulses under the same lock after each frame: no lost wake-up
            }
        }
        return started == 0 ? 0 : Stopwatch.GetTimestamp() - started;
    }

    private bool TryCopy(long version, int from, int to, float[] model)
    {
        lock (_gate)
        {
            if (!_arrivals.Covers(version, from, to)) return false;
            Values(version).Slice(from, to - from).CopyTo(model.AsSpan(from, to - from));
            return true;
        }
    }

    /// <summary>
    /// Async: when every shard's newest complete version is at least <paramref name="minVersion"/>, copies the ranges newer
    /// than <paramref name="modelShardVersion"/> holds into <paramref name="model"/>, updates it, and returns the oldest
    /// version the model now holds; -1 (nothing copied) when some shard is older.
    /// </summary>
    public long TryRefresh(long minVersion, float[] model, long[] modelShardVersion)
    {
        lock (_gate)
        {
            for (int s = 0; s < _shards.Length; s++) if (_arrivals.CompleteVersion(s) < minVersion) return -1; // -1 while a newer one is half arrived
            long oldest = long.MaxValue;
            for (int s = 0; s < _shards.Length; s++)
            {
                if (_arrivals.CompleteVersion(s) != modelShardVersion[s])
                {
                    var info = _shards[s];
                    _pending.AsSpan((int)info.Offset, info.Length).CopyTo(model.AsSpan((int)info.Offset, info.Length));
                    modelShardVersion[s] = _arrivals.CompleteVersion(s);
                }
                oldest = Math.Min(oldest, modelShardVersion[s]);
            }
            return oldest;
        }
    }

    /// <summary>Where <paramref name="version"/>'s values are: its parity's buffer, or (async) the newest pushed ones.</summary>
    private Span<float> Values(long version) => _direct ? _slots[version & 1] : _pending;

    private int ShardIndex(int shard)
    {
        for (int i = 0; i < _shards.Length; i++) if (_shards[i].Shard == shard) return i;
        return -1;
    }

    // ---- data plane: parameter pushes from the shards (receive threads) ----

    DropReason? IFrameHandler.Rent(FrameHeader header, out Span<float> destination)
    {
        destination = Span<float>.Empty;
        if (header.Kind != FrameKind.Parameters) return DropReason.Rejected;
        lock (_gate)
        {
            int s = ShardIndex(header.Shard);
            if (s < 0 || header.Offset < _shards[s].Offset) return DropReason.Rejected;
            // A range's values come from the shard that owns it in the layout this worker holds, never from another peer.
            if (header.SenderId != _owners[s]) return DropReason.NotPermitted;
            // A push may come as several frames, each a piece of the shard's range (KeyRanges.PushChunks).
            long rel = header.Offset - _shards[s].Offset;
            if (rel + header.Length > _shards[s].Length) return DropReason.WrongLength;
            if (!_direct) { destination = _staging[s].AsSpan((int)rel, header.Length); return null; }
            // Straight into place, written before the checksum is checked: only where no version being read can lie.
            if (!_arrivals.MayReceive(s, header.Version, (int)rel, header.Length)) return DropReason.Rejected;
            destination = _slots[header.Version & 1].AsSpan((int)header.Offset, header.Length);
            return null;
        }
    }

    void IFrameHandler.OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
    {
        lock (_gate)
        {
            int s = ShardIndex(header.Shard);
            if (!_arrivals.Accept(s, header.Version, (int)(header.Offset - _shards[s].Offset), header.Length)) return;
            if (!_direct) payload.CopyTo(_pending.AsSpan((int)header.Offset, header.Length));
            _peerLost = false; // pushes flow: whoever closed a connection is pushing again
        }
        lock (_pulse) Monitor.PulseAll(_pulse);
        arrived();
    }

    void IFrameHandler.OnPeerDisconnected(int senderId)
    {
        _peerLost = true;
        lock (_pulse) Monitor.PulseAll(_pulse);
    }
}
