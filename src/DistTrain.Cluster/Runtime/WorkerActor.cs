// A worker as an actor: WorkerCore decides; this translates its effects into messages to the coordinator, calls
// into the replica (WorkerReplica: model, data, data plane) and stops when told. The shards' pushes arrive on
// data-plane threads and come back here as ParametersArrived, which gives the core another look at waiting work.
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.Cores;

namespace DistTrain.Cluster.Runtime;

public sealed class WorkerActor : RoleActor, IWithTimers
{
    private readonly IActorRef _coordinator;
    private readonly CoordinatorWatch _watch;
    private readonly Action<string>? _onRefused;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerReplica _replica;
    private readonly WorkerCore _core;

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record ParametersArrived : INoSerializationVerificationNeeded;
    private sealed record Again : INoSerializationVerificationNeeded;

    public WorkerActor(IActorRef coordinator, string workerId, NodeEndpoints endpoints, Action<string>? onRefused = null,
        Training.SimulateComputeOption? simulate = null, Action<string>? onFailed = null) : base($"worker {workerId}", onFailed)
    {
        (_coordinator, _onRefused) = (coordinator, onRefused);
        _watch = new CoordinatorWatch(coordinator);
        var self = Self; // the inbox calls back on receive threads, where Self is unavailable
        var log = _log;
        _replica = new WorkerReplica(workerId, Self.Path.Address.ToString(), endpoints, () => self.Tell(new ParametersArrived()))
        {
            Abandoned = why => log.Warning(why),
            Simulate = simulate,
        };
        _core = new WorkerCore(workerId, _replica);
        var gate = new MessageGate(Context, $"worker {workerId}");
        Receive<object>(m => !gate.Admit(m, Sender), _ => { }); // refused (counted, logged) before the core sees it
        Receive<ActorEffects.Tick>(t => Run(_core.Timer(t.Name)));
        Receive<ParametersArrived>(_ => Run(_core.Next()));
        Receive<Again>(_ => Run(_core.Next()));
        Receive<Terminated>(t => { if (_watch.Lost(t, Context)) Run(_core.CoordinatorLost()); });
        Receive<Messages.CoordinatorMessages.JobDescription>(m => { _watch.Follow(Context); Run(_core.Handle(m)); });
        Receive<Messages.CoordinatorMessages.RegisterAccepted>(m => { _watch.Follow(Context); Run(_core.Handle(m)); });
        Receive<object>(m => Run(_core.Handle(m)));
    }

    public static Props Props(IActorRef coordinator, string workerId, NodeEndpoints endpoints, Action<string>? onRefused = null,
        Training.SimulateComputeOption? simulate = null, Action<string>? onFailed = null) =>
        Akka.Actor.Props.Create(() => new WorkerActor(coordinator, workerId, endpoints, onRefused, simulate, onFailed));

    protected override void Begin() => Run(_core.Start());

    protected override void PostStop() => _replica.Dispose();

    private void Run(IReadOnlyList<Effect> effects)
    {
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case Send s: _coordinator.Tell(s.Message); break;
                case Flush f:
                    if (_replica.Flush(f.Work) is { } done) _coordinator.Tell(done);
                    break;
                case Continue: Self.Tell(new Again()); break;
                case Stop: ActorEffects.RunShared(effect, Context, Timers, _log, _onRefused); return;
                default: ActorEffects.RunShared(effect, Context, Timers, _log, _onRefused); break;
            }
        }
    }
}
