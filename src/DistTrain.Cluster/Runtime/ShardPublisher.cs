// A shard's send side: one data-plane connection per worker, each new version of the range pushed to all of
// them frame by frame (first layers first, so every worker can start its forward early). Each connection has
// its own sender thread, so a worker that stops reading (paused, behind a slow link) never holds up the
// shard or the other workers: the shard copies a new version once into a pooled buffer and hands it to every
// sender; a sender still busy with an older version skips to the newest and sends it whole (a worker takes a
// version two ahead only as one whole-range frame, ParameterArrivals.MayReceive). A worker whose connection
// fails is dropped here; it gets the whole range again when it re-announces itself.
using DistTrain.Cluster.DataPlane;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Runtime;

public sealed class ShardPublisher(NodeEndpoints endpoints, int senderId) : IDisposable
{
    /// <summary>One version of the range and the checksum of each of its frames, shared by the senders (reference-counted, pooled).</summary>
    private sealed class Snapshot(int length)
    {
        public readonly float[] Values = new float[length];
        public ulong[] Checksums = [];   // per push chunk; valid when a peer sends the version in chunks
        public ulong WholeChecksum;      // valid when a peer sends it as one whole-range frame
        public long Version;
        public int Shard, Offset, Refs;
    }

    private sealed class Peer(string id, DataPlaneClient client)
    {
        public readonly string Id = id;
        public readonly DataPlaneClient Client = client;
        public Snapshot? Next;        // the newest version not yet begun (a newer one replaces it)
        public bool NextWhole;        // send Next as one whole-range frame
        public long Last = -1;        // the version the sender took last (sending or sent)
        public bool Closed;
    }

    private readonly object _gate = new();   // Monitor: the senders wait on it for their next version
    private readonly Dictionary<string, Peer> _workers = [];
    private readonly Stack<Snapshot> _pool = new();

    /// <summary>The frames a new version goes out in (sync: cut at layer boundaries; other modes: the whole range).</summary>
    public KeyRange[] Chunks { get; set; } = [];

    /// <summary>Connects to a worker's endpoint with this shard's <paramref name="key"/> toward it (replacing an older connection of
    /// the same worker) and sends it the current values.</summary>
    public void Add(string workerId, string host, int port, DataPlaneKey key, ParameterShard shard)
    {
        var peer = new Peer(workerId, endpoints.Connect(host, port, senderId, key));
        Peer? old;
        lock (_gate)
        {
            _workers.Remove(workerId, out old);
            _workers[workerId] = peer;
        }
        if (old is not null) Close(old);
        new Thread(() => SendLoop(peer)) { IsBackground = true, Name = $"push to {workerId}" }.Start();
        Hand(shard, whole: true, only: peer);
    }

    /// <summary>The workers this shard pushes to.</summary>
    public string[] WorkerIds()
    {
        lock (_gate) return _workers.Keys.ToArray();
    }

    /// <summary>Stops pushing to a worker that left; false if it had no connection.</summary>
    public bool Remove(string workerId)
    {
        Peer? peer;
        lock (_gate) _workers.Remove(workerId, out peer);
        if (peer is null) return false;
        Close(peer);
        return true;
    }

    /// <summary>Hands the shard's current version to every worker's sender and returns: the senders send it.</summary>
    public void PushAll(ParameterShard shard) => Hand(shard, whole: false, only: null);

    /// <summary>Sends every worker the whole range (after a restore).</summary>
    public void ResendAll(ParameterShard shard) => Hand(shard, whole: true, only: null);

    /// <summary>Copies the shard's values once (on the shard's thread, before anything can change them) for the senders.</summary>
    private void Hand(ParameterShard shard, bool whole, Peer? only)
    {
        lock (_gate)
        {
            if (only is null && _workers.Count == 0) return;
            var snap = _pool.Count > 0 ? _pool.Pop() : new Snapshot(shard.Values.Length);
            shard.Values.CopyTo(snap.Values, 0);
            (snap.Version, snap.Shard, snap.Offset) = (shard.Version, shard.Shard, shard.Range.Offset);
            snap.Refs = 1; // the hand-out itself, released below
            bool anyWhole = false, anyChunked = false;
            foreach (var peer in only is null ? _workers.Values.ToArray() : [only])
            {
                if (peer.Closed) continue;
                bool skipping = peer.Next is not null;
                if (peer.Next is { } skipped) Release(skipped);
                peer.NextWhole = whole || skipping || snap.Version != peer.Last + 1;
                (anyWhole, anyChunked) = (anyWhole || peer.NextWhole, anyChunked || !peer.NextWhole);
                peer.Next = snap;
                snap.Refs++;
            }
            // The same bytes go to every worker: each frame's checksum is computed once, and only for the way it is sent.
            if (anyChunked)
            {
                if (snap.Checksums.Length != Chunks.Length) snap.Checksums = new ulong[Chunks.Length];
                for (int i = 0; i < Chunks.Length; i++)
                    snap.Checksums[i] = DataPlaneClient.Checksum(snap.Values.AsSpan(Chunks[i].Offset - snap.Offset, Chunks[i].Length));
            }
            if (anyWhole) snap.WholeChecksum = DataPlaneClient.Checksum(snap.Values);
            Release(snap);
            Monitor.PulseAll(_gate);
        }
    }

    private void SendLoop(Peer peer)
    {
        while (true)
        {
            Snapshot snap;
            bool whole;
            lock (_gate)
            {
                while (peer.Next is null && !peer.Closed) Monitor.Wait(_gate);
                if (peer.Closed) return;
                (snap, whole) = (peer.Next!, peer.NextWhole);
                peer.NextWhole = false;
                peer.Next = null;
                peer.Last = snap.Version;
            }
            try
            {
                if (whole)
                    peer.Client.Send(new FrameHeader(FrameKind.Parameters, snap.Version, 0, snap.Version, snap.Shard, snap.Offset, snap.Values.Length, 0, 0),
                        snap.Values, snap.WholeChecksum);
                else
                    for (int i = 0; i < Chunks.Length; i++)
                    {
                        var c = Chunks[i];
                        var header = new FrameHeader(FrameKind.Parameters, snap.Version, 0, snap.Version, snap.Shard, c.Offset, c.Length, 0, 0);
                        peer.Client.Send(header, snap.Values.AsSpan(c.Offset - snap.Offset, c.Length), snap.Checksums[i]);
                    }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // The worker is gone (or was removed while this blocked): stop pushing to it.
                lock (_gate)
                {
                    Release(snap);
                    if (_workers.TryGetValue(peer.Id, out var current) && current == peer) _workers.Remove(peer.Id);
                }
                Close(peer);
                return;
            }
            lock (_gate) Release(snap);
        }
    }

    private void Release(Snapshot snap)
    {
        if (--snap.Refs == 0) _pool.Push(snap);
    }

    private void Close(Peer peer)
    {
        lock (_gate)
        {
            peer.Closed = true;
            if (peer.Next is { } pending) { Release(pending); peer.Next = null; }
            Monitor.PulseAll(_gate);
        }
        peer.Client.Dispose(); // a send blocked on a worker that stopped reading fails at once
    }

    public void Dispose()
    {
        Peer[] peers;
        lock (_gate)
        {
            peers = _workers.Values.ToArray();
            _workers.Clear();
        }
        foreach (var p in peers) Close(p);
    }
}
