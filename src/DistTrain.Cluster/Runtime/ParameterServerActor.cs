// A parameter-server shard as an actor: ShardCore decides; this translates its effects into Akka messages to the
// coordinator, the shard's data-plane server and ShardPublisher (pushes), and checkpoint sends.
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.Cores;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;

namespace DistTrain.Cluster.Runtime;

public sealed class ParameterServerActor : RoleActor, IWithTimers
{
    private readonly IActorRef _coordinator;
    private readonly CoordinatorWatch _watch;
    private NodeEndpoints _endpoints;
    private readonly Action<string>? _onRefused;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ShardCore _core;
    private ShardPublisher? _publisher;
    private DataPlaneServer? _server;
    private int _senderId;
    private DataPlaneKey? _coordinatorKey;   // this shard's key toward the coordinator's listener (checkpoint frames)

    public ITimerScheduler Timers { get; set; } = null!;


    public ParameterServerActor(IActorRef coordinator, string nodeId, NodeEndpoints endpoints, Action<string>? onRefused = null,
        Action<string>? onFailed = null) : base($"PS {nodeId}", onFailed)
    {
        (_coordinator, _endpoints, _onRefused) = (coordinator, endpoints, onRefused);
        _watch = new CoordinatorWatch(coordinator);
        var self = Self; // the inbox posts from receive threads, where Self is unavailable
        _core = new ShardCore(nodeId, endpoints.GradientChunkFloats, m => self.Tell(m));
        var gate = new MessageGate(Context, $"PS {nodeId}");
        Receive<object>(m => !gate.Admit(m, Sender), _ => { }); // refused (counted, logged) before the core sees it
        Receive<ActorEffects.Tick>(t => Run(_core.Timer(t.Name)));
        // The first assignment (the one the core takes) carries this shard's data-plane keys for the Serve that follows it: its
        // listener key and its key toward the coordinator's listener (the gate checked that both are keys).
        Receive<RuntimeMessages.ShardAssignment>(a =>
        {
            if (_server is null)
            {
                _endpoints = _endpoints with { Key = DataPlaneKey.FromWire(a.Job.DataKey) };
                _coordinatorKey = DataPlaneKey.FromWire(a.CoordinatorKey);
            }
            _watch.Follow(Context);
            Run(_core.Handle(a));
        });
        // A coordinator that took over answers the shard's RejoinShard with this: it is the one to watch from now on.
        Receive<RuntimeMessages.RollBack>(b => { _watch.Follow(Context); Run(_core.Handle(b)); });
        Receive<Terminated>(t => { if (_watch.Lost(t, Context)) Run(_core.CoordinatorLost()); });
        Receive<object>(m => Run(_core.Handle(m)));
    }

    public static Props Props(IActorRef coordinator, string nodeId, NodeEndpoints endpoints, Action<string>? onRefused = null,
        Action<string>? onFailed = null) =>
        Akka.Actor.Props.Create(() => new ParameterServerActor(coordinator, nodeId, endpoints, onRefused, onFailed));

    protected override void Begin() => Run(_core.Start());

    protected override void PostStop()
    {
        _server?.Dispose();
        _publisher?.Dispose();
    }

    private void Run(IReadOnlyList<Effect> effects)
    {
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case Send s: _coordinator.Tell(s.Message); break;
                case Push p when p.Whole: _publisher!.ResendAll(_core.Shard!); break;
                case Push: _publisher!.PushAll(_core.Shard!); break;
                case Serve s: Serve(s); break;
                case AddWorker w: AddWorker(w); break;
                case RemoveWorker w: RemoveWorker(w.WorkerId); break;
                case RemoveAllWorkers:
                    foreach (var id in _publisher?.WorkerIds() ?? []) RemoveWorker(id);
                    break;
                case Disconnect d:
                    if (_server?.Close(d.SenderId) > 0) _log.Info("PS {0}: closed the data-plane connection(s) of sender {1}: {2}", _core.Shard!.Shard, d.SenderId, d.Why);
                    break;
                case SendState s: SendState(s); break;
                case Stop: ActorEffects.RunShared(effect, Context, Timers, _log, _onRefused); return;
                default: ActorEffects.RunShared(effect, Context, Timers, _log, _onRefused); break;
            }
        }
    }

    private void Serve(Serve s)
    {
        _senderId = s.SenderId;
        _publisher = new ShardPublisher(_endpoints, s.SenderId) { Chunks = s.PushChunks };
        _server = _endpoints.Listen(s.Inbox);
        Run(_core.Listening(_endpoints.AdvertisedHost, _server.Port));
    }

    private void AddWorker(AddWorker w)
    {
        try { _publisher!.Add(w.WorkerId, w.Host, w.Port, DataPlaneKey.FromWire(w.Key), _core.Shard!); }
        catch (IOException e) { _log.Warning("PS {0}: cannot reach worker {1}: {2}", _core.Shard!.Shard, w.WorkerId, e.Message); }
    }

    /// <summary>
    /// The worker left: stop pushing to it and close its gradient connections here too. A frame it was sending when its
    /// link was cut holds its chunk's slot until the connection ends, and a cut link never ends one by itself: the worker
    /// that redoes the micro-batch would find that chunk "Duplicate" every time. Closing fails the frame in flight.
    /// </summary>
    private void RemoveWorker(string workerId)
    {
        _publisher?.Remove(workerId);
        int closed = _server?.Close(JobMapping.SenderIdOf(workerId)) ?? 0;
        if (closed > 0) _log.Info("PS {0}: closed {1} data-plane connection(s) of worker {2}, which left", _core.Shard!.Shard, closed, workerId);
    }

    private void SendState(SendState s)
    {
        try
        {
            using var client = _endpoints.Connect(s.Host, s.Port, _senderId, _coordinatorKey!);
            _core.Inbox!.SendCheckpoint(client, s.Version);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            _log.Error("PS shard {0}: checkpoint of version {1} not sent: {2}", _core.Shard!.Shard, s.Version, e.Message);
        }
    }
}
