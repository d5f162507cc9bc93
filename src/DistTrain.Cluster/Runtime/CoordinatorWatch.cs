// What a shard or a worker actor knows of its coordinator: the singleton's actor that last spoke to it (not the proxy
// it sends through), watched, so that the death of the coordinator's node shows as Terminated and the role asks a
// standby that takes over to have it back (ShardCore / WorkerCore.CoordinatorLost).
using Akka.Actor;

namespace DistTrain.Cluster.Runtime;

internal sealed class CoordinatorWatch(IActorRef proxy)
{
    private IActorRef? _watched;

    /// <summary>Watches the sender of the message at hand (an assignment, a job, a roll-back: the coordinator).</summary>
    public void Follow(IActorContext context)
    {
        var sender = context.Sender;
        if (sender.Equals(_watched) || sender.Equals(proxy) || sender.IsNobody()) return;
        if (_watched is not null) context.Unwatch(_watched);
        _watched = sender;
        context.Watch(sender);
    }

    /// <summary>
    /// Whether <paramref name="t"/> is the coordinator's end and somebody may take over. A node that leaves (downed, or the
    /// run is over) sees the coordinator's actor "terminate" too, and nobody takes over then.
    /// </summary>
    public bool Lost(Terminated t, IActorContext context)
    {
        if (!t.ActorRef.Equals(_watched)) return false;
        _watched = null;
        return CoordinatedShutdown.Get(context.System).ShutdownReason is null;
    }
}
