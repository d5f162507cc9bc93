// A trial runner (`disttrain node --roles trial`): tells the sweep node it is idle, takes one TrialRequest at a time from
// it, runs the trial as a child `disttrain train --threads 1` into a fresh run folder, streams the child's output lines
// back, then sends the run folder's files in chunks and TrialFinished, deletes its copy and is idle again. It takes
// requests only from a cluster member with the sweep role (MessageGate: members only; well-formed) and only train options
// (TrialRequestCheck). Ends (the node then exits) when the sweep says it is finished or the sweep's node is gone.
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using static DistTrain.Cluster.Messages.SweepMessages;

namespace DistTrain.Cli.Sweep;

public sealed class TrialRunnerActor : ReceiveActor, IWithTimers
{
    /// <summary>How the runner's actor ended: null when the sweep finished, else why it stopped.</summary>
    public sealed class Outcome
    {
        readonly TaskCompletionSource<string?> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task<string?> Done => _done.Task;
        internal void End(string? why) => _done.TrySetResult(why);
        /// <summary>Attempts this runner started (tests: a refused request starts none).</summary>
        public int Started;
    }

    const int LogBatchChars = 48 * 1024, MaxLineChars = 2000;

    readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    readonly ILoggingAdapter _log = Context.GetLogger();
    readonly MessageGate _gate;
    readonly string _root;
    readonly IReadOnlyList<string> _disttrain;
    readonly TrainOptionCatalog _catalog;
    readonly Outcome _outcome;
    readonly string _self;
    Address? _sweep;
    Running? _running;

    sealed class Running(TrialRequest request, IActorRef sweep, Process process, string dir)
    {
        public TrialRequest Request { get; } = request;
        public IActorRef Sweep { get; } = sweep;
        public Process Process { get; } = process;
        public string Dir { get; } = dir;
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public List<string> Pending { get; } = [];
        public int PendingChars;
        public string LastError = "";
    }

    sealed record Line(long Attempt, string Text, bool Error) : INoSerializationVerificationNeeded;
    sealed record Exited(long Attempt, int Code) : INoSerializationVerificationNeeded;
    sealed record Flush;
    sealed record AnnounceTick;

    public ITimerScheduler Timers { get; set; } = null!;

    public TrialRunnerActor(string root, IReadOnlyList<string> disttrain, Outcome outcome)
    {
        (_root, _disttrain, _outcome) = (root, disttrain, outcome);
        _catalog = TrainOptionCatalog.FromTrainCommand();
        _gate = new MessageGate(Context, "trial runner");
        _self = _cluster.SelfAddress.ToString();
        Receive<ClusterEvent.MemberUp>(e => { if (e.Member.HasRole("sweep")) Announce(e.Member.Address); });
        Receive<ClusterEvent.MemberRemoved>(e => { if (e.Member.Address == _sweep) Stop($"the sweep's node {_sweep} left the cluster"); });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<TrialRequest>(r => { if (Admit(r)) OnRequest(r); });
        Receive<TrialFile>(f => { if (Admit(f)) OnPreviousRung(f); });
        Receive<SweepFinished>(m => { if (Admit(m)) Stop(null); });
        Receive<Line>(OnLine);
        Receive<Flush>(_ => FlushLog());
        // Idle: say so again now and then, in case the sweep's dispatcher was not there yet or lost track of this runner.
        Receive<AnnounceTick>(_ => { if (_running is null && _sweep is { } s) Announce(s); });
        Receive<Exited>(OnExited);
    }

    public static Props Props(string root, IReadOnlyList<string> disttrain, Outcome outcome) =>
        Akka.Actor.Props.Create(() => new TrialRunnerActor(root, disttrain, outcome));

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Timers.StartPeriodicTimer("announce", new AnnounceTick(), TimeSpan.FromSeconds(3));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        KillChild();
        _outcome.End("the trial runner stopped");
    }

    void Announce(Address sweep)
    {
        _sweep = sweep;
        Context.ActorSelection(new RootActorPath(sweep) / "user" / "sweep").Tell(new RunnerReady(_self, WireProtocol.Version));
    }

    /// <summary>Members only (the gate), and of them only the sweep's node: a worker or another runner gives no trials.</summary>
    bool Admit(object message)
    {
        if (!_gate.Admit(message, Sender)) return false;
        var from = Sender.Path.Address;
        if (_cluster.State.Members.Any(m => m.Address == from && m.HasRole("sweep"))) return true;
        _log.Warning("trial runner refused {0} from {1}: not the sweep's node", message.GetType().Name, Sender.Path);
        return false;
    }

    /// <summary>The checkpoint a promoted trial continues from, sent ahead of its request: kept for one attempt at a time.</summary>
    (long Attempt, RunFolderWriter Writer, string? Problem)? _previous;

    void OnPreviousRung(TrialFile f)
    {
        if (_previous is not { } p || p.Attempt != f.Attempt)
        {
            DropPrevious();
            var dir = Path.Combine(_root, $"attempt-{f.Attempt}-previous");
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            p = (f.Attempt, new RunFolderWriter(dir, ClusterTrialRunner.DefaultMaxTrialBytes), null);
        }
        if (p.Problem is null && p.Writer.Write(f) is { } problem) p = p with { Problem = $"the previous rung's checkpoint: {problem}" };
        _previous = p;
    }

    void DropPrevious()
    {
        if (_previous is not { } p) return;
        p.Writer.Dispose();
        try { if (Directory.Exists(p.Writer.Root)) Directory.Delete(p.Writer.Root, recursive: true); } catch (IOException) { }
        _previous = null;
    }

    void OnRequest(TrialRequest r)
    {
        if (_running is not null) { Sender.Tell(new TrialRefused(r.Attempt, $"busy with attempt {_running.Request.Attempt}")); return; }
        string? previousDir = null;
        if (_previous is { } prev && prev.Attempt == r.Attempt)
        {
            if (prev.Problem is not null || !prev.Writer.Whole)
            {
                Sender.Tell(new TrialRefused(r.Attempt, prev.Problem ?? "the previous rung's checkpoint arrived incomplete"));
                Sender.Tell(new RunnerReady(_self, WireProtocol.Version));
                DropPrevious();
                return;
            }
            prev.Writer.Dispose();
            previousDir = prev.Writer.Root;
        }
        else DropPrevious();
        if (r.ProtocolVersion != WireProtocol.Version)
        {
            Sender.Tell(new TrialRefused(r.Attempt, $"this runner speaks protocol {WireProtocol.Version}, the sweep {r.ProtocolVersion}: run the same disttrain build on both"));
            return;
        }
        var dir = Path.Combine(_root, $"attempt-{r.Attempt}");
        List<string> args;
        try { args = TrialRequestCheck.ChildArguments(r.Arguments, _catalog, dir, previousDir); }
        catch (ArgumentException e)
        {
            DropPrevious();
            _log.Warning("trial runner refused trial {0} (attempt {1}): {2}", r.Trial, r.Attempt, e.Message);
            Sender.Tell(new TrialRefused(r.Attempt, e.Message));
            Sender.Tell(new RunnerReady(_self, WireProtocol.Version));
            return;
        }
        if (DatasetProblem(r) is { } mismatch)
        {
            DropPrevious();
            _log.Warning("trial runner refused trial {0} (attempt {1}): {2}", r.Trial, r.Attempt, mismatch);
            Sender.Tell(new TrialRefused(r.Attempt, mismatch));
            Sender.Tell(new RunnerReady(_self, WireProtocol.Version));
            return;
        }
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo(_disttrain[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in _disttrain.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        var p = new Process { StartInfo = psi };
        var self = Self;
        long attempt = r.Attempt;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) self.Tell(new Line(attempt, e.Data, false)); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) self.Tell(new Line(attempt, e.Data, true)); };
        try { p.Start(); }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            DropPrevious();
            Sender.Tell(new TrialFinished(attempt, -1, $"cannot start {_disttrain[0]}: {e.Message}", 0, 0, 0));
            Sender.Tell(new RunnerReady(_self, WireProtocol.Version));
            return;
        }
        Interlocked.Increment(ref _outcome.Started);
        _running = new Running(r, Sender, p, dir);
        Console.WriteLine($"trial {r.Trial} rung {r.Rung} (attempt {attempt}): started");
        // The command line as it ran, with this machine's folders named RUN (the output) and RESUME (the previous rung's checkpoint).
        _running.Pending.Add("$ disttrain " + string.Join(" ", args.Select(a => a == dir ? "RUN" : a == previousDir ? "RESUME" : a)));
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        // WaitForExit() after the exit returns once both streams are drained, so every Line is in the mailbox before Exited.
        Task.Run(async () => { await p.WaitForExitAsync().ConfigureAwait(false); p.WaitForExit(); return new Exited(attempt, p.ExitCode); }).PipeTo(self);
        Timers.StartPeriodicTimer("flush", new Flush(), TimeSpan.FromMilliseconds(500));
    }

    readonly Dictionary<string, string> _fingerprints = new(StringComparer.Ordinal);

    /// <summary>
    /// Null when this machine's copy of the request's dataset is the sweep's (same SHA-256 fingerprint of the training split,
    /// as a worker checks the coordinator's), or nothing is to be checked; else why not. Each dataset is read once.
    /// </summary>
    string? DatasetProblem(TrialRequest r)
    {
        if (r.TrainFingerprint.Length == 0) return null;
        int at = Array.IndexOf(r.Arguments, "--dataset");
        if (at < 0 || at + 1 >= r.Arguments.Length) return null;
        var spec = r.Arguments[at + 1];
        if (!_fingerprints.TryGetValue(spec, out var here))
        {
            try { here = DistTrain.Data.DatasetOps.Fingerprint(DistTrain.Data.Sources.DatasetSpec.Parse(spec).Load().Train); }
            catch (Exception e) when (e is ArgumentException or IOException or DistTrain.Data.DataException or UnauthorizedAccessException)
            {
                return $"this runner cannot read the dataset '{spec}': {e.Message}";
            }
            _fingerprints[spec] = here;
        }
        return here == r.TrainFingerprint ? null
            : $"this runner's copy of the dataset '{spec}' differs from the sweep's (training split fingerprint {here} here, {r.TrainFingerprint} at the sweep); " +
              $"give every machine the same files (`disttrain data check --dataset {spec}` prints the fingerprint)";
    }

    void OnLine(Line l)
    {
        if (_running is not { } run || run.Request.Attempt != l.Attempt) return;
        var text = l.Text.Length <= MaxLineChars ? l.Text : l.Text[..MaxLineChars] + " [line cut]";
        if (l.Error && text.Trim().Length > 0) run.LastError = text.Trim();
        run.Pending.Add(text);
        run.PendingChars += text.Length + 1;
        if (run.PendingChars >= LogBatchChars) FlushLog();
    }

    void FlushLog()
    {
        if (_running is not { Pending.Count: > 0 } run) return;
        run.Sweep.Tell(new TrialLog(run.Request.Attempt, run.Pending.ToArray()));
        run.Pending.Clear();
        run.PendingChars = 0;
    }

    void OnExited(Exited e)
    {
        if (_running is not { } run || run.Request.Attempt != e.Attempt) return;
        FlushLog();
        Timers.Cancel("flush");
        run.Process.Dispose();
        _running = null;
        long total = RunFolderWriter.Size(run.Dir);
        int sent = 0;
        long bytes = 0;
        string lastError = e.Code != 0 ? run.LastError : "";
        if (total > run.Request.MaxResultBytes)
            lastError = $"its run folder holds {total} bytes, more than the sweep accepts ({run.Request.MaxResultBytes}, --max-trial-bytes)";
        else (sent, bytes) = RunFolderWriter.Send(run.Dir, "", run.Request.Attempt, m => run.Sweep.Tell(m));
        run.Sweep.Tell(new TrialFinished(run.Request.Attempt, e.Code, lastError, run.Clock.Elapsed.TotalSeconds, sent, bytes));
        Console.WriteLine($"trial {run.Request.Trial} rung {run.Request.Rung} (attempt {run.Request.Attempt}): exit code {e.Code}, sent {sent} files ({bytes} bytes)");
        try { Directory.Delete(run.Dir, recursive: true); } catch (IOException) { }
        DropPrevious();
        run.Sweep.Tell(new RunnerReady(_self, WireProtocol.Version));
    }

    void KillChild()
    {
        if (_running is not { } run) return;
        try { if (!run.Process.HasExited) run.Process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        _running = null;
    }

    void Stop(string? why)
    {
        KillChild();
        _outcome.End(why);
        Context.Stop(Self);
    }
}
