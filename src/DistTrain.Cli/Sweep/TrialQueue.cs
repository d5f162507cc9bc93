// The sweep's book of cluster trial runners: which runners are idle, which attempt each one runs, and the trials
// waiting for one. A trial goes to the idle runner that has waited longest; a runner that is lost (unreachable, removed)
// gives its trial back to the front of the queue, to run again from step 0 on another runner — the result is the same,
// since a trial is a single-threaded, seeded training. Attempts are numbered, so a lost runner's late messages are
// recognised and ignored. Pure: the dispatcher actor (TrialDispatcherActor) feeds it events and sends what it returns.
namespace DistTrain.Cli.Sweep;

/// <summary>A trial to run: its key (the sweep's run), the train options it sends, and how many runners died under it.</summary>
public sealed class QueuedTrial<TKey>(TKey key, string[] arguments)
{
    public TKey Key { get; } = key;
    public string[] Arguments { get; } = arguments;
    public int Lost { get; set; }
}

/// <summary>Attempt <paramref name="Attempt"/> of a trial on runner <paramref name="Runner"/>.</summary>
public sealed record Assignment<TKey>(string Runner, long Attempt, QueuedTrial<TKey> Trial);

public sealed class TrialQueue<TKey>(int maxLost = 3)
{
    readonly LinkedList<QueuedTrial<TKey>> _waiting = new();
    readonly List<string> _idle = [];                                   // in the order they became idle
    readonly Dictionary<string, Assignment<TKey>> _busy = new(StringComparer.Ordinal);
    readonly Dictionary<long, Assignment<TKey>> _attempts = [];
    long _nextAttempt = 1;

    public int Waiting => _waiting.Count;
    public int Idle => _idle.Count;
    public IReadOnlyCollection<string> Runners => _idle.Concat(_busy.Keys).ToList();

    /// <summary>A trial to run (after those already waiting).</summary>
    public void Submit(QueuedTrial<TKey> trial) => _waiting.AddLast(trial);

    /// <summary>A runner says it is idle (it joined, or finished or refused its attempt). A runner that is busy here is not
    /// made idle by it: its attempt ends by Finished, Refused or Lost.</summary>
    public void Ready(string runner)
    {
        if (!_busy.ContainsKey(runner) && !_idle.Contains(runner)) _idle.Add(runner);
    }

    /// <summary>Pairs idle runners with waiting trials, oldest first on both sides.</summary>
    public List<Assignment<TKey>> Assign()
    {
        var made = new List<Assignment<TKey>>();
        while (_idle.Count > 0 && _waiting.First is { } first)
        {
            _waiting.RemoveFirst();
            var a = new Assignment<TKey>(_idle[0], _nextAttempt++, first.Value);
            _idle.RemoveAt(0);
            _busy[a.Runner] = a;
            _attempts[a.Attempt] = a;
            made.Add(a);
        }
        return made;
    }

    /// <summary>The current attempt <paramref name="attempt"/> if <paramref name="runner"/> holds it; null for a stale or
    /// foreign one (a runner lost and back, or another runner's number).</summary>
    public Assignment<TKey>? Holding(string runner, long attempt) =>
        _attempts.TryGetValue(attempt, out var a) && a.Runner == runner ? a : null;

    /// <summary>The attempt ended (its result is in, or it failed for good): the runner is idle again.</summary>
    public void Finished(Assignment<TKey> a)
    {
        if (!_attempts.Remove(a.Attempt)) return;
        _busy.Remove(a.Runner);
        Ready(a.Runner);
    }

    /// <summary>The runner turned the attempt down because it is busy (with work this sweep gave it before it was thought lost):
    /// the trial goes back to the front of the queue, and the runner waits for its next Ready.</summary>
    public void Bounced(Assignment<TKey> a)
    {
        if (!_attempts.Remove(a.Attempt)) return;
        _busy.Remove(a.Runner);
        _waiting.AddFirst(a.Trial);
    }

    /// <summary>
    /// The runner is gone. Its trial (if any) goes back to the front of the queue, unless runners already died under it
    /// <c>maxLost</c> times: then it is returned as given up (a trial that kills its runner must not kill them all).
    /// </summary>
    public (QueuedTrial<TKey>? Requeued, QueuedTrial<TKey>? GivenUp) Lost(string runner)
    {
        _idle.Remove(runner);
        if (!_busy.Remove(runner, out var a)) return (null, null);
        _attempts.Remove(a.Attempt);
        a.Trial.Lost++;
        if (a.Trial.Lost >= maxLost) return (null, a.Trial);
        _waiting.AddFirst(a.Trial);
        return (a.Trial, null);
    }

    /// <summary>Takes a waiting trial out (its sweep no longer wants it); false if it is not waiting.</summary>
    public bool Withdraw(TKey key)
    {
        for (var n = _waiting.First; n is not null; n = n.Next)
            if (EqualityComparer<TKey>.Default.Equals(n.Value.Key, key)) { _waiting.Remove(n); return true; }
        return false;
    }
}
