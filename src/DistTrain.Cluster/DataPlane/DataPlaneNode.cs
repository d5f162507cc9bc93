// A node's whole data plane: its listener (advertised as Host:Port in the join handshake) plus one
// outgoing connection per peer id, so the actor layer can send by peer id and drop a peer that left
// the cluster with one call (ClosePeer), failing its in-flight transfers both ways.
using System.Collections.Concurrent;
using System.Net;
using DistTrain.Cluster.Configuration;

namespace DistTrain.Cluster.DataPlane;

public sealed class DataPlaneNode : IDisposable
{
    private readonly DataPlaneSettings _settings;
    private readonly DataPlaneServer _server;
    private readonly ConcurrentDictionary<int, DataPlaneClient> _peers = new();

    /// <param name="selfId">This node's id, written as SenderId into every frame it sends.</param>
    /// <param name="key">This node's listener key (DataPlaneKey.ListenerKey): the listener admits a peer only with its sender id's key.</param>
    public DataPlaneNode(int selfId, DataPlaneSettings settings, IFrameHandler handler, DataPlaneKey key)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(key);
        SelfId = selfId;
        _settings = settings;
        // Loopback hosts bind loopback only; any other advertised address binds every interface.
        var bind = settings.Host is "127.0.0.1" or "localhost" ? IPAddress.Loopback : IPAddress.Any;
        _server = new DataPlaneServer(bind, settings.Port, handler, key, settings.MaxFrameBytes, settings.SocketBufferBytes, settings.Limits);
    }

    public int SelfId { get; }

    /// <summary>Where peers reach this node's data plane (advertise both in RegisterWorker / RegisterShard).</summary>
    public string Host => _settings.Host;

    public int Port => _server.Port;

    public DataPlaneStats Stats => _server.Stats;

    /// <summary>The connection to <paramref name="peerId"/>, opened on first use with <paramref name="key"/> (the peer's listener
    /// key's PeerKey of this node's id).</summary>
    public DataPlaneClient Connect(int peerId, string host, int port, DataPlaneKey key)
    {
        if (_peers.TryGetValue(peerId, out var existing) && !existing.IsClosed) return existing;
        var client = DataPlaneClient.Connect(host, port, SelfId, key, _settings.ConnectTimeout, _settings.SocketBufferBytes);
        _peers[peerId] = client;
        return client;
    }

    /// <summary>Sends to a peer connected earlier with <see cref="Connect"/>; IOException if it is gone.</summary>
    public void Send(int peerId, FrameHeader header, ReadOnlySpan<float> payload)
    {
        if (!_peers.TryGetValue(peerId, out var client))
            throw new IOException($"Data plane: no connection to peer {peerId}; call Connect with its advertised host and port first.");
        client.Send(header, payload);
    }

    /// <summary>The peer left the cluster: close our connection to it and its connections to us.</summary>
    public void ClosePeer(int peerId)
    {
        if (_peers.TryRemove(peerId, out var client)) client.Close();
        _server.Close(peerId);
    }

    public void Dispose()
    {
        foreach (var id in _peers.Keys) if (_peers.TryRemove(id, out var c)) c.Close();
        _server.Dispose();
    }
}
