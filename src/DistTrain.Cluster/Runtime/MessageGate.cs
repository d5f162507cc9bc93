// The door of a role actor (coordinator, parameter-server shard, worker): a control message must come from this process
// or a member of the cluster, be well-formed (Messages/MessageValidation), and name as its sender's own only worker and shard
// ids of the sender's node (the coordinator hands an id's data-plane keys to whoever registers it), before the role's core sees it. Anything
// else is counted (Telemetry/ControlRefusals: disttrain_refused_messages), logged with its reason, and dropped: the role
// keeps the state it has, where a core that threw half-way would have made Akka restart the actor into a fresh one.
// A message from another node that names no sender, or an actor of this node, is refused too: it would otherwise pass as
// local. Without TLS the check rests on the sender's address, which a stranger can still forge by naming a member's
// actor: --insecure is for networks where everyone who can reach the port is trusted. With TLS on (multinode) only nodes
// with the cluster CA's certificates reach this door at all.
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Serialization;
using DistTrain.Cluster.Telemetry;

namespace DistTrain.Cluster.Runtime;

public sealed class MessageGate
{
    private readonly string _role;
    private readonly Akka.Cluster.Cluster? _cluster; // null in an ActorSystem without the cluster provider (tests)
    private readonly ILoggingAdapter _log;
    private readonly long[] _refused = new long[Enum.GetValues<RefusalReason>().Length];

    /// <param name="bounds">What the role knows of the run's shape from the start (the coordinator: shards and parameters);
    /// the gate learns the rest from the layout or assignment it admits.</param>
    public MessageGate(IActorContext context, string role, MessageBounds bounds = default)
    {
        _role = role;
        _log = context.GetLogger();
        _cluster = ((ExtendedActorSystem)context.System).Provider is Akka.Cluster.ClusterActorRefProvider
            ? Akka.Cluster.Cluster.Get(context.System) : null;
        Bounds = bounds;
    }

    public MessageBounds Bounds { get; private set; }

    /// <summary>How many messages this gate refused for <paramref name="reason"/>.</summary>
    public long Refused(RefusalReason reason) => _refused[(int)reason];

    /// <summary>True when the role's core may handle <paramref name="message"/>; otherwise it was counted and logged.</summary>
    public bool Admit(object message, IActorRef sender)
    {
        if (message is not IDistTrainMessage) return true; // the actor's own timers and inbox events never cross a process
        if (!IsMember(sender.Path.Address))
            return Refuse(RefusalReason.NotMember, $"{message.GetType().Name} from {sender.Path.Address}, which is not a member of the cluster");
        // Members send from their own actors; a message from another node whose sender is none (dead letters) or an actor of
        // this node hides where it came from.
        if (sender.Path.Address.Host is null && HyperionSerializer.CameOverTheWire(message))
            return Refuse(RefusalReason.NotMember, $"{message.GetType().Name} from another node that named no actor of its own as the sender ({sender.Path})");
        if (MessageValidation.Problem(message, Bounds) is { } problem)
            return Refuse(RefusalReason.Malformed, $"{problem} (from {sender.Path})");
        if (MessageValidation.ClaimedId(message) is { } id && IsRemote(sender.Path.Address) && !MessageValidation.OwnsId(sender.Path.Address.ToString(), id))
            return Refuse(RefusalReason.NotOwnId, $"{message.GetType().Name} from {sender.Path.Address} names {id}, an id of another node");
        Bounds = MessageValidation.Learn(message, Bounds);
        return true;
    }

    /// <summary>Another process: this process's own actors (a local address, or this node's) may name any id.</summary>
    private bool IsRemote(Address address) => address.Host is not null && (_cluster is null || address != _cluster.SelfAddress);

    private bool IsMember(Address address)
    {
        if (address.Host is null || _cluster is null || address == _cluster.SelfAddress) return true;
        foreach (var m in _cluster.State.Members)
            if (m.Address == address) return true;
        return false;
    }

    private bool Refuse(RefusalReason reason, string why)
    {
        long mine = ++_refused[(int)reason];
        long total = ControlRefusals.Count(reason);
        // A stranger can send many: the first ones are each said, then one line per thousand.
        if (mine <= 20 || mine % 1000 == 0)
            _log.Warning("{0} refused a control message ({1}, {2} so far in this process): {3}", _role, ControlRefusals.Tag(reason), total, why);
        return false;
    }
}
