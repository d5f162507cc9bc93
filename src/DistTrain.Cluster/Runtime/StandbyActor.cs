// A standby coordinator's watch on the coordinator. Every coordinator-eligible node runs one; the coordinator tells
// it the job's id and data-plane job key (StandbyState), which it needs to take over. It holds an idle data-plane connection to the coordinator's
// listener: when the coordinator's process dies the connection closes at once, and the standby downs that node
// instead of waiting for the failure detector and the split-brain resolver; the cluster singleton then moves here
// and the CoordinatorActor that starts takes the run over with what this actor heard (CoordinatorHandover).
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.DataPlane;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Runtime;

/// <summary>What a standby node's StandbyActor heard from the coordinator; read by the CoordinatorActor that takes over.</summary>
public sealed class CoordinatorHandover
{
    private readonly TaskCompletionSource<string?> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<StandbyState> _heard = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile StandbyState? _latest;

    /// <summary>The newest StandbyState of a run not yet finished, or null.</summary>
    public StandbyState? Latest => _latest;
    public bool Finished => _ended.Task.IsCompleted;

    /// <summary>Completes when this standby has nothing more to do: with null when the coordinator finished the run, with the
    /// reason when it cannot take over.</summary>
    public Task<string?> Ended => _ended.Task;

    /// <summary>Completes when the coordinator first told this node about its run: from then on this node can take it over.</summary>
    public Task<StandbyState> Told => _heard.Task;

    internal void Heard(StandbyState s)
    {
        if (s.Finished) _ended.TrySetResult(null);
        else { _latest = s; _heard.TrySetResult(s); }
    }

    public void CannotTakeOver(string why) => _ended.TrySetResult(why);
}

public sealed class StandbyActor : ReceiveActor
{
    private readonly CoordinatorHandover _handover;
    private readonly NodeEndpoints _endpoints;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private DataPlaneClient? _link;
    private (string Host, int Port, Address Node)? _watching;

    private sealed record LinkClosed(DataPlaneClient Link) : INoSerializationVerificationNeeded;

    public StandbyActor(CoordinatorHandover handover, NodeEndpoints endpoints)
    {
        (_handover, _endpoints) = (handover, endpoints);
        Receive<StandbyState>(OnState);
        Receive<LinkClosed>(OnLinkClosed);
    }

    public static Props Props(CoordinatorHandover handover, NodeEndpoints endpoints) =>
        Akka.Actor.Props.Create(() => new StandbyActor(handover, endpoints));

    private void OnState(StandbyState s)
    {
        // Only a coordinator-eligible member may say what the run is (and so decide which node this one downs).
        var from = Sender.Path.Address;
        if (!_cluster.State.Members.Any(m => m.Address.Equals(from) && m.HasRole("coordinator") && m.Status == Akka.Cluster.MemberStatus.Up))
        {
            _log.Warning("Standby: ignored a coordinator state from {0}, which is not an Up coordinator-eligible member", from);
            return;
        }
        bool first = _handover.Latest is null;
        _handover.Heard(s);
        if (s.Finished) { _link?.Dispose(); _link = null; return; }
        if (first) _log.Info("Standby coordinator for job {0}: the coordinator on {1} is watched", s.JobId, from);
        if (_watching is { } w && w.Host == s.DataHost && w.Port == s.DataPort && w.Node.Equals(from) && _link is not null) return;
        _watching = (s.DataHost, s.DataPort, from);
        Watch(WatchKey(s.DataKey));
    }

    /// <summary>The key of this watch's sender id toward the coordinator's listener, from the job key.</summary>
    private static DataPlaneKey WatchKey(byte[] jobKey) =>
        new JobKeys(DataPlaneKey.FromWire(jobKey)).Peer(JobMapping.CoordinatorSenderId, JobMapping.StandbyWatchSenderId);

    private void Watch(DataPlaneKey key)
    {
        _link?.Dispose();
        _link = null;
        var (host, port, node) = _watching!.Value;
        try { _link = _endpoints.Connect(host, port, JobMapping.StandbyWatchSenderId, key); }
        catch (IOException e)
        {
            _log.Warning("Standby: cannot watch the coordinator's listener {0}:{1} ({2}); its loss is seen when the cluster downs {3}", host, port, e.Message, node);
            return;
        }
        var (self, link) = (Self, _link);
        new Thread(() => { link.WaitUntilPeerCloses(); self.Tell(new LinkClosed(link)); }) { IsBackground = true, Name = "watch coordinator" }.Start();
    }

    /// <summary>
    /// The coordinator's listener closed the connection. A process that died closes every socket, and its listener then
    /// refuses a new connection: that node is downed now, and the singleton moves here. A listener that still accepts means
    /// the process lives (the connection was closed for another reason): it is watched again.
    /// </summary>
    private void OnLinkClosed(LinkClosed c)
    {
        if (!ReferenceEquals(c.Link, _link) || _watching is not { } w || _handover.Finished) return;
        var key = WatchKey(_handover.Latest!.DataKey);
        try
        {
            using var probe = (_endpoints with { ConnectTimeout = TimeSpan.FromSeconds(2) }).Connect(w.Host, w.Port, JobMapping.StandbyWatchSenderId, key);
        }
        catch (IOException)
        {
            _log.Warning("Standby: the coordinator's process on {0} is gone (its listener {1}:{2} closed and refuses connections); downing that node so that this one takes over",
                w.Node, w.Host, w.Port);
            _link?.Dispose();
            _link = null;
            _cluster.Down(w.Node);
            return;
        }
        Watch(key);
    }

    protected override void PostStop() => _link?.Dispose();
}
