// A shard's send side: one data-plane connection per worker, each new version of the range pushed to all of
// them frame by frame (first layers first, so every worker can start its forward early). A worker whose
// connection fails is dropped here; it gets the whole range again when it re-announces itself.
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Training;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Runtime;

public sealed class ShardPublisher(NodeEndpoints endpoints, int senderId) : IDisposable
{
    private readonly Dictionary<string, DataPlaneClient> _workers = [];

    /// <summary>The frames a new version goes out in (sync: cut at layer boundaries; other modes: the whole range).</summary>
    public KeyRange[] Chunks { get; set; } = [];

    /// <summary>Connects to a worker's endpoint (replacing an older connection of the same worker) and sends it the current values.</summary>
    public void Add(string workerId, string host, int port, ParameterShard shard)
    {
        var client = endpoints.Connect(host, port, senderId);
        if (_workers.Remove(workerId, out var old)) old.Dispose();
        _workers[workerId] = client;
        Send(client, shard);
    }

    /// <summary>Stops pushing to a worker that left; false if it had no connection.</summary>
    public bool Remove(string workerId)
    {
        if (!_workers.Remove(workerId, out var c)) return false;
        c.Dispose();
        return true;
    }

    /// <summary>Pushes the shard's current version to every worker, each frame to all of them before the next frame.</summary>
    public void PushAll(ParameterShard shard)
    {
        List<string>? failed = null;
        foreach (var chunk in Chunks)
        {
            ReadOnlySpan<float> values = shard.Values.AsSpan(chunk.Offset - shard.Range.Offset, chunk.Length);
            ulong checksum = DataPlaneClient.Checksum(values); // the same bytes go to every worker: hash them once
            var header = new FrameHeader(FrameKind.Parameters, shard.Version, 0, shard.Version, shard.Shard, chunk.Offset, chunk.Length, 0, 0);
            foreach (var (id, client) in _workers)
            {
                if (failed?.Contains(id) == true) continue;
                try { client.Send(header, values, checksum); }
                catch (IOException) { (failed ??= []).Add(id); }
            }
        }
        if (failed is not null) foreach (var id in failed) Remove(id);
    }

    /// <summary>Sends every worker the whole range (after a restore); drops the ones that cannot be reached.</summary>
    public void ResendAll(ParameterShard shard)
    {
        foreach (var (id, client) in _workers.ToArray())
        {
            try { Send(client, shard); }
            catch (IOException) { Remove(id); }
        }
    }

    private static void Send(DataPlaneClient client, ParameterShard shard) =>
        client.Send(new FrameHeader(FrameKind.Parameters, shard.Version, 0, shard.Version, shard.Shard, shard.Range.Offset, shard.Range.Length, 0, 0),
            shard.Values, DataPlaneClient.Checksum(shard.Values));

    public void Dispose()
    {
        foreach (var c in _workers.Values) c.Dispose();
        _workers.Clear();
    }
}
