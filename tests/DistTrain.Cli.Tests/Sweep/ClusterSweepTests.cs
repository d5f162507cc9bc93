// `disttrain sweep --cluster-port` with trial runners (`disttrain node --roles trial`) as real processes: the same scores,
// models and winner as the local sweep; a runner killed mid-trial has its trial rerun on the other with the same result;
// a trial request from a non-member or with an option that is not a train option is refused. Small synthetic data.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Akka.Actor;
using DistTrain.Cli.Sweep;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Telemetry;
using Xunit;
using Xunit.Abstractions;
using static DistTrain.Cluster.Messages.SweepMessages;

namespace DistTrain.Cli.Tests.Sweep;

[Collection("Console")]
public sealed class ClusterSweepTests(ITestOutputHelper output) : IDisposable
{
    const string Data = "synthetic:quadrants:n=400:test-n=200:margin=0.05:seed=2";
    readonly string _dir = Directory.CreateTempSubdirectory("disttrain-csweep-").FullName;
    readonly List<Process> _processes = [];

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            // A killed runner leaves its trial folder (TrialNode deletes it only on a normal exit).
            try { Directory.Delete(Path.Combine(Path.GetTempPath(), $"disttrain-trials-{p.Id}"), recursive: true); } catch (IOException) { }
            p.Dispose();
        }
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    Process Runner(int seedPort, string name, Action<string>? onLine = null) =>
        Start(["node", "--roles", "trial", "--seed-nodes", $"akka.tcp://disttrain@127.0.0.1:{seedPort}"], name, onLine);

    /// <summary>`disttrain ARGS` as a process of its own, its output logged (and handed to <paramref name="onLine"/>).</summary>
    Process Start(string[] args, string name, Action<string>? onLine = null)
    {
        var psi = new ProcessStartInfo("dotnet", ["exec", MultiProcessClusterTests.Dll(), .. args])
        { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { Log($"[{name}] {e.Data}"); onLine?.Invoke(e.Data); } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) Log($"[{name}!] {e.Data}"); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return p;
    }

    readonly Stopwatch _clock = Stopwatch.StartNew();

    void Log(string line) { try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,6:F1} {line}"); } catch (InvalidOperationException) { } }

    sealed record Row(int Trial, int Rung, double Metric, string Dir, string? Runner);

    static List<Row> Rows(string outDir) => File.ReadAllLines(Path.Combine(outDir, "results.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
        .Select(e => new Row(e.GetProperty("trial").GetInt32(), e.GetProperty("rung").GetInt32(), e.GetProperty("metric").GetDouble(),
            Path.Combine(outDir, e.GetProperty("run").GetString()!), e.TryGetProperty("runner", out var r) ? r.GetString() : null))
        .OrderBy(r => r.Trial).ThenBy(r => r.Rung).ToList();

    static byte[] Model(string runDir) => File.ReadAllBytes(Path.Combine(runDir, "model.safetensors"));

    static void WaitExit(Process p, string name, int ms = 20_000)
    {
        Assert.True(p.WaitForExit(ms), $"{name} did not exit");
        p.WaitForExit();
    }

    [Fact]
    public void A_halving_sweep_over_two_runner_processes_gives_the_local_sweeps_scores_models_and_winner()
    {
        string[] sweep = ["sweep", "lr=log:1e-3..3e-1", "batch=20", "optimizer=adam", "--model", "quadrant", "--dataset", Data, "--strategy", "random",
            "--trials", "2", "--unit", "steps", "--budget", "12", "--halving", "6", "--eta", "2", "--metric", "test_loss", "--seed", "3"];
        int port = FreePort();
        // The cluster sweep and its runners are processes, started first: their start and join overlap the local sweep here.
        var cluster = Path.Combine(_dir, "cluster");
        var clusterOut = new System.Text.StringBuilder();
        var sweeper = Start([.. sweep, "--cluster-port", port.ToString(), "--runners", "2", "--out", cluster], "sweep", l => { lock (clusterOut) clusterOut.AppendLine(l); });
        var runners = new[] { Runner(port, "r1"), Runner(port, "r2") };
        var local = Path.Combine(_dir, "local");
        Log("local sweep starts");
        var (lc, lo, le) = CliRunner.Run([.. sweep, "--parallel", "2", "--out", local, "--disttrain", MultiProcessClusterTests.Dll()]);
        Assert.True(lc == 0, le + lo);
        Log("local sweep ended");
        WaitExit(sweeper, "the cluster sweep", 120_000);
        string co;
        lock (clusterOut) co = clusterOut.ToString();
        Assert.True(sweeper.ExitCode == 0, co);

        // 2 trials × 6 steps, the better × 12: the same runs, metrics and model bytes, wherever each ran.
        var (l, c) = (Rows(local), Rows(cluster));
        Assert.Equal(l.Select(r => (r.Trial, r.Rung)), c.Select(r => (r.Trial, r.Rung)));
        Assert.Equal(3, c.Count);
        for (int i = 0; i < l.Count; i++)
        {
            Assert.Equal(l[i].Metric, c[i].Metric);
            Assert.True(Model(l[i].Dir).AsSpan().SequenceEqual(Model(c[i].Dir)), $"trial {c[i].Trial} rung {c[i].Rung}: the runner's model differs from the local one");
            Assert.True(File.Exists(Path.Combine(c[i].Dir, "metrics.jsonl")));
            Assert.Null(l[i].Runner);
        }
        // Both runners took trials (the first two go out together), and the report names each trial's runner.
        var names = c.Select(r => r.Runner!).Distinct().ToList();
        Assert.Equal(2, names.Count);
        var best = l.Single(r => r.Rung == 1);
        Assert.Contains($"best: trial {best.Trial} ", lo);
        Assert.Contains($"best: trial {best.Trial} ", co);
        var report = File.ReadAllText(Path.Combine(cluster, "report.md"));
        Assert.Contains($"**Best: trial {best.Trial},", report);
        Assert.Contains("| runner |", report);
        foreach (var r in c.Where(r => r.Rung == 0 && r.Trial != best.Trial)) Assert.Contains($"| {r.Runner} |", report);
        Assert.Contains($"# trial runner {c[0].Runner}, attempt ", File.ReadAllText(Path.Combine(c[0].Dir, "train.log")));
        // The promoted trial went on from its first rung's checkpoint (sent to whichever runner took it), as locally:
        // its metrics.jsonl holds steps 6..11 only.
        var promoted = c.Single(r => r.Rung == 1);
        var promotedLog = File.ReadAllText(Path.Combine(promoted.Dir, "train.log"));
        Assert.Contains("# continues from rung-0's checkpoint", promotedLog);
        Assert.Contains("--resume RESUME", promotedLog);
        Assert.Equal(Enumerable.Range(6, 6).Select(i => (long)i), File.ReadLines(Path.Combine(promoted.Dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("kind").GetString() == "step").Select(e => e.GetProperty("step").GetInt64()));
        // The sweep told the runners it was over: they exit 0.
        for (int i = 0; i < runners.Length; i++) { WaitExit(runners[i], $"runner {i}"); Assert.Equal(0, runners[i].ExitCode); }
    }

    [Fact]
    public async Task A_runner_killed_mid_trial_has_its_trial_rerun_on_the_other_runner_with_the_same_result()
    {
        int port = FreePort();
        // One trial, two runners: whichever gets it is killed with its child `disttrain train` just after starting it, as a
        // machine that dies; the other must train it again.
        var killed = new TaskCompletionSource<(string Line, int Runner)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var runners = new Process[2];
        for (int i = 0; i < 2; i++)
        {
            int me = i;
            runners[i] = Runner(port, $"r{i}", line =>
            {
                if (line.Contains("): started") && killed.TrySetResult((line, me))) runners[me].Kill(entireProcessTree: true);
            });
        }
        var outDir = Path.Combine(_dir, "killed");
        Log("sweep starts");
        var (code, so, se) = CliRunner.Run("sweep", "lr=0.05", "batch=20", "optimizer=adam", "--model", "quadrant", "--dataset", Data, "--strategy", "grid",
            "--unit", "steps", "--budget", "12", "--metric", "test_loss", "--cluster-port", port.ToString(), "--runners", "2", "--out", outDir);
        Log(so + se);
        Assert.True(code == 0, se + so);
        Assert.True(killed.Task.IsCompleted, "no runner started the trial");
        var (line, victim) = await killed.Task;
        Assert.StartsWith("trial 0 rung 0 (attempt 1): started", line);

        var rerun = Assert.Single(Rows(outDir));
        Assert.Matches(@"trial runner 127\.0\.0\.1:\d+ (disconnected|is unreachable|left the cluster); trial 0 rung 0 goes to another runner", so);
        Assert.Contains("(1 runner(s) lost before)", File.ReadAllText(Path.Combine(rerun.Dir, "train.log")));
        Assert.Contains($"# trial runner {rerun.Runner}, attempt 2 ", File.ReadAllText(Path.Combine(rerun.Dir, "train.log")));

        // Its result is what one plain `disttrain train` of its configuration gives in this process.
        Log("fresh train starts");
        var fresh = Path.Combine(_dir, "fresh");
        var (tc, to, te) = CliRunner.Run("train", "--model", "quadrant", "--dataset", Data, "--lr", "0.05", "--batch-size", "20",
            "--optimizer", "adam", "--seed", "1", "--max-steps", "12", "--epochs", "1000000", "--checkpoint-every", "-1", "--out", fresh);
        Assert.True(tc == 0, te + to);
        Assert.True(Model(fresh).AsSpan().SequenceEqual(Model(rerun.Dir)), "the rerun trial's model differs from a plain train run");
        Assert.Equal(File.ReadLines(Path.Combine(fresh, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Last(r => r.GetProperty("kind").GetString() == "epoch").GetProperty("test_loss").GetDouble(), rerun.Metric);
        var b = runners[1 - victim];
        WaitExit(b, "the surviving runner");
        Assert.Equal(0, b.ExitCode);
    }

    /// <summary>Collects what the runner answers (TrialRefused, TrialLog, ...).</summary>
    sealed class Inbox : ReceiveActor
    {
        public Inbox(ConcurrentQueue<object> got) => ReceiveAny(got.Enqueue);
    }

    [Fact]
    public async Task A_request_from_a_non_member_or_with_an_option_that_is_not_a_train_option_is_refused()
    {
        int port = FreePort();
        var seeds = new[] { $"akka.tcp://disttrain@127.0.0.1:{port}" };
        await using var sweep = ClusterNode.Start(new NodeOptions { Roles = ["sweep"], Overrides = new ClusterOverrides { Port = port, Hocon = ClusterTrialRunner.DowningHocon } });
        await using var runner = ClusterNode.Start(new NodeOptions { Roles = ["trial"], Overrides = new ClusterOverrides { SeedNodes = seeds, Hocon = ClusterTrialRunner.DowningHocon } });
        // A stranger: a node of its own cluster, which can reach the runner's port but is no member of the runner's cluster.
        await using var stranger = ClusterNode.Start(new NodeOptions { Roles = ["sweep"], Overrides = new ClusterOverrides { Port = FreePort() } });
        await Task.WhenAll(sweep.WaitUntilUp(), runner.WaitUntilUp(), stranger.WaitUntilUp());
        var root = Path.Combine(_dir, "runner");
        var outcome = new TrialRunnerActor.Outcome();
        var actor = runner.System.ActorOf(TrialRunnerActor.Props(root, ["dotnet", MultiProcessClusterTests.Dll()], outcome), "trial-runner");
        var runnerPath = actor.Path.ToStringWithAddress(Akka.Cluster.Cluster.Get(runner.System).SelfAddress);

        string[] good = ["--model", "quadrant", "--dataset", Data, "--lr", "0.01", "--seed", "1", "--max-steps", "3"];
        var fromStranger = new ConcurrentQueue<object>();
        var strangerInbox = stranger.System.ActorOf(Props.Create(() => new Inbox(fromStranger)));
        long notMember = ControlRefusals.Of(RefusalReason.NotMember);
        stranger.System.ActorSelection(runnerPath).Tell(new TrialRequest(1, 0, 0, good, 1 << 20, WireProtocol.Version), strangerInbox);

        var fromSweep = new ConcurrentQueue<object>();
        var sweepInbox = sweep.System.ActorOf(Props.Create(() => new Inbox(fromSweep)));
        var bad = new (string[] Args, string Says)[]
        {
            ([.. good, "--out", "/tmp/elsewhere"], "'--out' is not a train option a trial may set"),
            ([.. good, "--threads", "2"], "'--threads' is not a train option a trial may set"),
            ([.. good, "--no-such-option", "1"], "'--no-such-option' is not a train option a trial may set"),
            (["--model", "quadrant", "--dataset", Data, "--lr", "0.01;rm", "--max-steps", "3"], "the value of --lr ('0.01;rm') is not one plain word"),
            (["--model", "quadrant", "--lr", "fast", "--max-steps", "3"], "the value of --lr ('fast') is not a number"),
            (["--model", "--out", "--max-steps", "3"], "the value of --model ('--out') starts with '-'"),
        };
        for (int i = 0; i < bad.Length; i++)
            sweep.System.ActorSelection(runnerPath).Tell(new TrialRequest(10 + i, 0, 0, bad[i].Args, 1 << 20, WireProtocol.Version), sweepInbox);
        // A well-formed request whose dataset is not the runner's copy (another fingerprint of the training split).
        var other = DistTrain.Data.DatasetOps.Fingerprint(DistTrain.Data.Sources.DatasetSpec.Parse(Data.Replace("seed=2", "seed=3")).Load().Train);
        sweep.System.ActorSelection(runnerPath).Tell(new TrialRequest(9, 0, 0, good, 1 << 20, WireProtocol.Version, other), sweepInbox);

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (fromSweep.OfType<TrialRefused>().Count() < bad.Length + 1 && DateTime.UtcNow < deadline) await Task.Delay(50);
        var refused = fromSweep.OfType<TrialRefused>().ToDictionary(r => r.Attempt, r => r.Reason);
        for (int i = 0; i < bad.Length; i++)
        {
            Assert.True(refused.TryGetValue(10 + i, out var why), $"request {i} got no refusal");
            Assert.Contains(bad[i].Says, why);
        }
        Assert.True(refused.TryGetValue(9, out var data), "the request with another dataset got no refusal");
        Assert.Contains($"this runner's copy of the dataset '{Data}' differs from the sweep's", data);
        Assert.Contains(other, data);
        // The stranger's well-formed request was dropped at the door: counted, never answered, nothing started.
        while (ControlRefusals.Of(RefusalReason.NotMember) == notMember && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(ControlRefusals.Of(RefusalReason.NotMember) > notMember, "the stranger's request was not refused as from a non-member");
        Assert.Empty(fromStranger);
        Assert.Equal(0, outcome.Started);
        Assert.False(Directory.Exists(Path.Combine(root, "attempt-1")));
    }
}
