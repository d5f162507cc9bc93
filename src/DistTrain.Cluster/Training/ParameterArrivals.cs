// A worker's bookkeeping of the shards' parameter pushes (sync, async and local-sgd alike): per shard, the version
// whose frames are arriving and how much of the shard's range has arrived from its start. A shard sends a version's
// frames in key order on one connection (KeyRanges.PushChunks), so "how much" is a prefix; a whole-range frame (a
// new worker's or a restore's push, on its own connection) stands alone. Pure state: the worker calls it under its lock.
using DistTrain.Training.Steps;
namespace DistTrain.Cluster.Training;

public sealed class ParameterArrivals
{
    private readonly KeyRange[] _shards;
    private readonly long[] _version;    // per shard: the version arriving (or arrived), -1 before the first frame
    private readonly int[] _received;    // per shard: floats of that version arrived, from the start of the range

    public ParameterArrivals(KeyRange[] shards)
    {
        ArgumentNullException.ThrowIfNull(shards);
        _shards = shards;
        _version = shards.Select(_ => -1L).ToArray();
        _received = new int[shards.Length];
    }

    /// <summary>The version shard <paramref name="shard"/>'s pending values hold whole, or -1 while one is half arrived
    /// (its frames overwrite the older version's from the range's start).</summary>
    public long CompleteVersion(int shard) => Intact(shard) ? _version[shard] : -1;

    /// <summary>
    /// A frame of <paramref name="version"/> for [offset, offset+length) of shard <paramref name="shard"/>'s range arrived
    /// (offset relative to the range). True when its values are to be kept (copied over the worker's pending values): the
    /// newest version, starting at or before what has arrived of it. Older versions, and a newer version's frame that
    /// does not start the range, or a piece after a lost one, are ignored (false).
    /// </summary>
    public bool Accept(int shard, long version, int offset, int length)
    {
        if (offset < 0 || length < 0 || (long)offset + length > _shards[shard].Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Frame [{offset}, {offset + length}) is outside shard {shard}'s {_shards[shard].Length} floats.");
        if (version < _version[shard]) return false;
        if (version > _version[shard])
        {
            if (offset != 0) return false;
            _version[shard] = version;
            _received[shard] = 0;
        }
        else if (offset > _received[shard]) return false;
        _received[shard] = Math.Max(_received[shard], offset + length);
        return true;
    }

    /// <summary>
    /// Whether a frame of <paramref name="version"/> may be received straight into the buffer of its version's parity
    /// (ParameterInbox with a step barrier) before its checksum is known: the arriving version's part not yet here, the
    /// next version, or any newer version's whole range (a restore or a newcomer's push). Never over values that may be
    /// read meanwhile: what has arrived of the newest version, the parity of an older one, a piece of a version two ahead.
    /// </summary>
    public bool MayReceive(int shard, long version, int offset, int length)
    {
        long current = _version[shard];
        if (version < 0 || version < current) return false;
        if (current < 0 || version == current + 1) return true;
        if (version == current) return offset >= _received[shard];
        return offset == 0 && length == _shards[shard].Length;
    }

    /// <summary>Whether every shard has <paramref name="version"/> whole; <paramref name="stale"/> when some shard has begun a newer
    /// one (whose frames overwrite the pending values from the range's start, so the older version is no longer there whole).</summary>
    public bool AllComplete(long version, out bool stale)
    {
        if (!AllBegun(version, out stale)) return false;
        for (int s = 0; s < _shards.Length; s++) if (!Intact(s)) return false;
        return true;
    }

    /// <summary>Whether shard <paramref name="shard"/>'s pending values are one whole version (no newer one half arrived).</summary>
    public bool Intact(int shard) => _version[shard] >= 0 && _received[shard] == _shards[shard].Length;

    /// <summary>Whether every shard has begun sending <paramref name="version"/> (its first frame arrived); <paramref name="stale"/>
    /// when some shard sends a newer one.</summary>
    public bool AllBegun(long version, out bool stale)
    {
        stale = false;
        foreach (var v in _version)
        {
            if (v > version) { stale = true; return false; }
            if (v < version) return false;
        }
        return true;
    }

    /// <summary>
    /// Whether the flat range [from, to) has arrived at <paramref name="version"/> in every shard it touches. Throws
    /// VersionPassedException when a shard has moved past that version: another copy of the micro-batch (a backup, or work
    /// handed out again) completed the step first, so this one can only be given up.
    /// </summary>
    public bool Covers(long version, int from, int to)
    {
        for (int s = 0; s < _shards.Length; s++)
        {
            var r = _shards[s];
            long lo = Math.Max(from, r.Offset), hi = Math.Min(to, r.End);
            if (lo >= hi) continue;
            if (_version[s] > version)
                throw new VersionPassedException($"shard {s} pushed version {_version[s]} while [{from}, {to}) of version {version} was still awaited: another copy completed the step first");
            if (_version[s] < version || r.Offset + _received[s] < hi) return false;
        }
        return true;
    }
}

/// <summary>A shard moved past the version a micro-batch is being computed on: another copy completed that step, and this
/// copy is given up (the worker asks for new work).</summary>
public sealed class VersionPassedException(string message) : Exception(message);
