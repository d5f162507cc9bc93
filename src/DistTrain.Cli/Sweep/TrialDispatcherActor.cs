// The sweep node's side of trials on the cluster (actor /user/sweep): learns the trial runners from their RunnerReady,
// hands each waiting trial to an idle runner (TrialQueue), writes what the runner streams back into the trial's run folder
// under the sweep's --out (train.log as lines arrive, then the run folder's files, bounded by --max-trial-bytes), and
// completes the trial with the metric read from the received metrics.jsonl. A runner that becomes unreachable or leaves
// gives its trial back to the queue; the next runner starts it again in a clean folder.
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using static DistTrain.Cluster.Messages.SweepMessages;

namespace DistTrain.Cli.Sweep;

public sealed class TrialDispatcherActor : ReceiveActor
{
    /// <summary>Local: run <paramref name="Run"/> with these train options on some runner; the outcome completes <paramref name="Done"/>.</summary>
    public sealed record Submit(TrialRun Run, string[] Arguments, TaskCompletionSource<TrialOutcome> Done) : INoSerializationVerificationNeeded;

    /// <summary>Local: the sweep no longer wants <paramref name="Run"/> (cancelled).</summary>
    public sealed record Withdraw(TrialRun Run) : INoSerializationVerificationNeeded;

    /// <summary>Local: tell every runner the sweep is over; replies with the number told.</summary>
    public sealed record FinishAll(string Reason) : INoSerializationVerificationNeeded;

    /// <summary>Local: how many runners are known (idle or busy).</summary>
    public sealed record CountRunners : INoSerializationVerificationNeeded;

    readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    readonly ILoggingAdapter _log = Context.GetLogger();
    readonly MessageGate _gate;
    readonly SweepMetric _metric;
    readonly long _maxBytes;
    readonly Action<string> _say;
    readonly TrialQueue<TrialRun> _queue = new();
    readonly Dictionary<TrialRun, TaskCompletionSource<TrialOutcome>> _wanted = [];
    readonly Dictionary<long, Receiving> _receiving = [];
    readonly Dictionary<string, IActorRef> _runners = new(StringComparer.Ordinal);
    bool _finishing;

    sealed class Receiving(Assignment<TrialRun> a, StreamWriter log, RunFolderWriter files)
    {
        public Assignment<TrialRun> Assignment { get; } = a;
        public StreamWriter Log { get; } = log;
        public RunFolderWriter Files { get; } = files;
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public int Lines;
    }

    readonly string _fingerprint;

    public TrialDispatcherActor(SweepMetric metric, long maxBytes, Action<string> say, string trainFingerprint)
    {
        (_metric, _maxBytes, _say, _fingerprint) = (metric, maxBytes, say, trainFingerprint);
        _gate = new MessageGate(Context, "sweep");
        Receive<Submit>(s =>
        {
            _wanted[s.Run] = s.Done;
            _queue.Submit(new QueuedTrial<TrialRun>(s.Run, s.Arguments));
            Dispatch();
        });
        Receive<Withdraw>(w =>
        {
            _queue.Withdraw(w.Run);
            if (_wanted.Remove(w.Run, out var tcs)) tcs.TrySetResult(TrialOutcome.Failed("cancelled", null, 0));
        });
        Receive<FinishAll>(f =>
        {
            foreach (var r in _runners.Values) r.Tell(new SweepFinished(f.Reason));
            _finishing = true; // the runners now leave: not news
            Sender.Tell(_runners.Count);
        });
        Receive<CountRunners>(_ => Sender.Tell(_runners.Count));
        Receive<RunnerReady>(m => { if (FromRunner(m)) OnReady(); });
        Receive<TrialRefused>(m => { if (FromRunner(m) && Holding(m.Attempt) is { } r) OnRefused(r, m); });
        Receive<TrialLog>(m => { if (FromRunner(m) && Holding(m.Attempt) is { } r) OnLog(r, m); });
        Receive<TrialFile>(m => { if (FromRunner(m) && Holding(m.Attempt) is { } r) OnFile(r, m); });
        Receive<TrialFinished>(m => { if (FromRunner(m) && Holding(m.Attempt) is { } r) OnFinished(r, m); });
        Receive<ClusterEvent.UnreachableMember>(e => { if (e.Member.HasRole("trial")) OnLost(e.Member.Address.ToString(), "is unreachable"); });
        Receive<ClusterEvent.MemberRemoved>(e => { if (e.Member.HasRole("trial")) OnLost(e.Member.Address.ToString(), "left the cluster"); });
        // The runner's process died (its connection closed): seconds before the failure detector calls it unreachable. A live
        // runner that only lost its connection loses its attempt too (it is run again; its late result is ignored).
        Receive<Akka.Remote.DisassociatedEvent>(e =>
        {
            var runner = e.RemoteAddress.ToString();
            if (_receiving.Values.Any(r => r.Assignment.Runner == runner)) OnLost(runner, "disconnected");
        });
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
    }

    /// <param name="trainFingerprint">The training split's fingerprint that runners check their copy against ("" = none).</param>
    public static Props Props(SweepMetric metric, long maxBytes, Action<string> say, string trainFingerprint = "") =>
        Akka.Actor.Props.Create(() => new TrialDispatcherActor(metric, maxBytes, say, trainFingerprint));

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.MemberRemoved));
        Context.System.EventStream.Subscribe(Self, typeof(Akka.Remote.DisassociatedEvent));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
        foreach (var r in _receiving.Values) Close(r);
        foreach (var tcs in _wanted.Values) tcs.TrySetResult(TrialOutcome.Failed("the sweep's cluster node stopped", null, 0));
    }

    /// <summary>How a runner is named in the report: its node's host and port.</summary>
    public static string Name(string address) => Address.Parse(address) is { Host: { } h, Port: { } p } ? $"{h}:{p}" : address;

    /// <summary>Members only (the gate), and of them only trial runners.</summary>
    bool FromRunner(object message)
    {
        if (!_gate.Admit(message, Sender)) return false;
        var from = Sender.Path.Address;
        if (_cluster.State.Members.Any(m => m.Address == from && m.HasRole("trial") && m.Status == MemberStatus.Up)) return true;
        _log.Warning("sweep refused {0} from {1}: not a trial runner of this cluster", message.GetType().Name, Sender.Path);
        return false;
    }

    Receiving? Holding(long attempt)
    {
        var runner = Sender.Path.Address.ToString();
        return _queue.Holding(runner, attempt) is { } a && _receiving.TryGetValue(a.Attempt, out var r) ? r : null;
    }

    void OnReady()
    {
        var runner = Sender.Path.Address.ToString();
        if (_runners.TryAdd(runner, Sender)) _say($"trial runner {Name(runner)} joined ({_runners.Count} now)");
        else _runners[runner] = Sender;
        _queue.Ready(runner);
        Dispatch();
    }

    void Dispatch()
    {
        foreach (var a in _queue.Assign())
        {
            var run = a.Trial.Key;
            if (!_wanted.ContainsKey(run)) { _queue.Finished(a); continue; } // withdrawn while waiting for a runner
            // A run again after a lost runner starts from a clean folder: nothing of the lost attempt stays.
            if (Directory.Exists(run.RunDir)) Directory.Delete(run.RunDir, recursive: true);
            Directory.CreateDirectory(run.RunDir);
            var log = new StreamWriter(Path.Combine(run.RunDir, ProcessTrialRunner.LogFile));
            log.WriteLine($"# trial runner {Name(a.Runner)}, attempt {a.Attempt}" + (a.Trial.Lost > 0 ? $" ({a.Trial.Lost} runner(s) lost before)" : ""));
            log.Flush();
            _receiving[a.Attempt] = new Receiving(a, log, new RunFolderWriter(run.RunDir, _maxBytes));
            var runner = _runners[a.Runner];
            var args = a.Trial.Arguments;
            // A promoted trial continues from its previous rung's checkpoint, which the sweep holds: it goes first (Akka keeps
            // the order of one sender's messages to one receiver), and the request names it by TrialRequestCheck.Previous.
            if (run.ResumeFrom is { } previous)
            {
                var (files, bytes) = RunFolderWriter.Send(DistTrain.Training.Checkpoints.CheckpointSeries.RootOf(previous),
                    DistTrain.Training.Checkpoints.CheckpointSeries.FolderName + "/", a.Attempt, m => runner.Tell(m));
                log.WriteLine($"# continues from {Path.GetFileName(previous)}'s checkpoint: {files} files ({bytes} bytes) sent to the runner");
                args = [.. args, "--resume", TrialRequestCheck.Previous];
            }
            runner.Tell(new TrialRequest(a.Attempt, run.Trial, run.Rung, args, _maxBytes, WireProtocol.Version, _fingerprint));
        }
        if (_queue.Waiting > 0 && _runners.Count == 0 && _wanted.Count == _queue.Waiting)
            _log.Info("{0} trials wait for a trial runner", _queue.Waiting);
    }

    void OnRefused(Receiving r, TrialRefused m)
    {
        var a = r.Assignment;
        Close(r);
        _receiving.Remove(a.Attempt);
        if (m.Reason.StartsWith("busy", StringComparison.Ordinal)) { _queue.Bounced(a); Dispatch(); return; }
        _queue.Finished(a);
        Complete(a.Trial.Key, TrialOutcome.Failed($"trial runner {Name(a.Runner)} refused it: {m.Reason}", LogOf(a), r.Clock.Elapsed.TotalSeconds) with { Runner = Name(a.Runner) });
        Dispatch();
    }

    void OnLog(Receiving r, TrialLog m)
    {
        foreach (var line in m.Lines)
            if (r.Lines++ < 100_000) r.Log.WriteLine(line.Length <= 4000 ? line : line[..4000]);
        r.Log.Flush();
    }

    void OnFile(Receiving r, TrialFile m)
    {
        if (r.Files.Write(m, ProcessTrialRunner.LogFile) is not { } problem) return;
        var a = r.Assignment;
        var run = a.Trial.Key;
        if (problem.StartsWith("more than", StringComparison.Ordinal) && problem.EndsWith("bytes", StringComparison.Ordinal)) problem += " (--max-trial-bytes)";
        _log.Warning("sweep: trial runner {0} sent {1} for trial {2}; the trial fails", a.Runner, problem, run.Trial);
        Close(r);
        _receiving.Remove(a.Attempt);
        _queue.Finished(a); // it may still send the rest of the attempt: ignored, the attempt is no longer held
        Complete(run, TrialOutcome.Failed($"trial runner {Name(a.Runner)} sent {problem}", LogOf(a), r.Clock.Elapsed.TotalSeconds) with { Runner = Name(a.Runner) });
        Dispatch();
    }

    void OnFinished(Receiving r, TrialFinished m)
    {
        var a = r.Assignment;
        var run = a.Trial.Key;
        Close(r);
        _receiving.Remove(a.Attempt);
        _queue.Finished(a);
        string runner = Name(a.Runner), log = LogOf(a);
        TrialOutcome outcome;
        if (m.ExitCode != 0)
            outcome = TrialOutcome.Failed($"exit code {m.ExitCode}{(m.LastError.Length > 0 ? ": " + m.LastError : "")} (on trial runner {runner})", log, m.Seconds);
        else if (m.Files == 0 && m.LastError.Length > 0)
            outcome = TrialOutcome.Failed($"trial runner {runner}: {m.LastError}", log, m.Seconds);
        else if (!r.Files.Whole || r.Files.Files != m.Files || r.Files.Bytes != m.Bytes)
            outcome = TrialOutcome.Failed($"trial runner {runner} said it sent {m.Files} files ({m.Bytes} bytes), {r.Files.Files} ({r.Files.Bytes} bytes) arrived whole", log, m.Seconds);
        else outcome = ProcessTrialRunner.Read(run.RunDir, _metric, log, m.Seconds);
        Complete(run, outcome with { Runner = runner });
        Dispatch();
    }

    void OnLost(string runner, string how)
    {
        // Down it now rather than after the split-brain resolver's stable-after: an unreachable member holds up the cluster's
        // convergence (the sweep's own leave at the end waited on it). A runner that was only cut off exits and can be restarted.
        if (how != "left the cluster") _cluster.Down(Address.Parse(runner));
        if (!_runners.Remove(runner)) return;
        var held = _receiving.Values.FirstOrDefault(r => r.Assignment.Runner == runner);
        var (requeued, givenUp) = _queue.Lost(runner);
        if (held is not null)
        {
            held.Log.WriteLine($"[sweep] trial runner {Name(runner)} {how}: this attempt is abandoned");
            Close(held);
            _receiving.Remove(held.Assignment.Attempt);
        }
        if (requeued is not null)
            _say($"trial runner {Name(runner)} {how}; trial {requeued.Key.Trial} rung {requeued.Key.Rung} goes to another runner, from step 0");
        else if (!_finishing) _say($"trial runner {Name(runner)} {how}");
        if (givenUp is not null)
            Complete(givenUp.Key, TrialOutcome.Failed($"{givenUp.Lost} trial runners were lost while running it (the last, {Name(runner)}, {how})",
                held is null ? null : LogOf(held.Assignment), held?.Clock.Elapsed.TotalSeconds ?? 0) with { Runner = Name(runner) });
        Dispatch();
    }

    static string LogOf(Assignment<TrialRun> a) => Path.Combine(a.Trial.Key.RunDir, ProcessTrialRunner.LogFile);

    static void Close(Receiving r)
    {
        r.Files.Dispose();
        r.Log.Dispose();
    }

    void Complete(TrialRun run, TrialOutcome outcome)
    {
        if (_wanted.Remove(run, out var tcs)) tcs.TrySetResult(outcome);
    }
}
