// The effects every role's actor carries out the same way: log lines, timers, and stopping (with the reason a
// refused node exits on). Each actor handles its role's own effects and passes the rest here.
using Akka.Actor;
using Akka.Event;
using DistTrain.Cluster.Cores;

namespace DistTrain.Cluster.Runtime;

internal static class ActorEffects
{
    /// <summary>A tick the actor sends itself for a core's timer.</summary>
    public sealed record Tick(string Name) : INoSerializationVerificationNeeded;

    /// <summary>Carries out <paramref name="effect"/> if it is one every role shares; false for the role's own.</summary>
    public static bool RunShared(Effect effect, IActorContext context, ITimerScheduler timers, ILoggingAdapter log, Action<string>? onRefused)
    {
        switch (effect)
        {
            case LogLine l: Log(log, l); return true;
            case StartTimer t: timers.StartPeriodicTimer(t.Name, new Tick(t.Name), t.Period); return true;
            case StopTimer t: timers.Cancel(t.Name); return true;
            case Stop s:
                if (s.Reason is not null) onRefused?.Invoke(s.Reason);
                context.Stop(context.Self);
                return true;
            default: return false;
        }
    }

    public static void Log(ILoggingAdapter log, LogLine line)
    {
        switch (line.Level)
        {
            case Severity.Error: log.Error("{0}", line.Text); break;
            case Severity.Warning: log.Warning("{0}", line.Text); break;
            default: log.Info("{0}", line.Text); break;
        }
    }

    /// <summary>
    /// A role's core threw: stop the actor instead of letting Akka restart it. A restarted worker or shard would come back
    /// with a fresh core and a new data-plane port that its peers never hear of, and the coordinator's death probe, finding
    /// the old port closed, would down the node while it runs. Stopping is what the coordinator already handles (it re-queues
    /// a worker's micro-batches and recovers a shard); the node then exits non-zero (ClusterNode.Failure) and a process
    /// supervisor restarts it, so it joins again as a new member.
    /// </summary>
    public static void Fail(Exception e, object message, string role, IActorContext context, ILoggingAdapter log, Action<string>? onFailed)
    {
        string why = $"{role} failed on {message.GetType().Name}: {e.GetType().Name}: {e.Message}";
        log.Error(e, "{0}; it stops (its work goes to the other members)", why);
        onFailed?.Invoke(why);
        context.Stop(context.Self);
    }
}
