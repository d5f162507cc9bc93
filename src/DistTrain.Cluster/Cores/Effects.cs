// What a role core asks its host to do. A core takes events (a message from a peer, a frame that arrived, a timer)
// and returns these; the actor around it only translates them into Akka (a peer is an opaque key the actor maps to
// an IActorRef). Tests run a core by feeding events and reading the effects, with no ActorSystem.
namespace DistTrain.Cluster.Cores;

public abstract record Effect;

/// <summary>Send <paramref name="Message"/> to the peer known by the key <paramref name="To"/>.</summary>
public sealed record Send(string To, object Message) : Effect;

/// <summary>Tell the core (PeerLeft) when this peer stops or its node leaves the cluster.</summary>
public sealed record Watch(string Peer) : Effect;

/// <summary>A progress line for the person running the job.</summary>
public sealed record Report(string Text) : Effect;

/// <summary>A line for the node's log.</summary>
public sealed record LogLine(Severity Level, string Text) : Effect;

public enum Severity { Info, Warning, Error }

/// <summary>Call the core's Timer(name) every <paramref name="Period"/> until stopped.</summary>
public sealed record StartTimer(string Name, TimeSpan Period) : Effect;

public sealed record StopTimer(string Name) : Effect;

/// <summary>The role is done: stop the actor (after the effects before this one).</summary>
public sealed record Stop(string? Reason = null) : Effect;

/// <summary>Collects effects in the order a core produces them.</summary>
public sealed class EffectList
{
    private readonly List<Effect> _effects = [];

    public void Add(Effect e) => _effects.Add(e);
    public void Send(string to, object message) => _effects.Add(new Send(to, message));
    public void Report(string text) => _effects.Add(new Report(text));
    public void Log(Severity level, string text) => _effects.Add(new LogLine(level, text));

    /// <summary>The effects so far, and an empty list for the next event.</summary>
    public IReadOnlyList<Effect> Take()
    {
        if (_effects.Count == 0) return [];
        var taken = _effects.ToArray();
        _effects.Clear();
        return taken;
    }
}
