// The base of the worker and shard actors: a core that throws, on start or on a message, stops the actor (ActorEffects.Fail)
// instead of letting Akka restart it with a fresh core and a new data-plane port its peers never hear of.
using Akka.Actor;
using Akka.Event;

namespace DistTrain.Cluster.Runtime;

public abstract class RoleActor(string role, Action<string>? onFailed) : ReceiveActor
{
    private readonly ILoggingAdapter _failureLog = Context.GetLogger();

    /// <summary>What the role does when the actor starts (its core's Start and the effects that follow).</summary>
    protected abstract void Begin();

    protected sealed override void PreStart()
    {
        try { Begin(); }
        catch (Exception e) when (e is not OutOfMemoryException) { ActorEffects.Fail(e, "start", role, Context, _failureLog, onFailed); }
    }

    protected sealed override bool AroundReceive(Receive receive, object message)
    {
        try { return base.AroundReceive(receive, message); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            ActorEffects.Fail(e, message, role, Context, _failureLog, onFailed);
            return true;
        }
    }
}
