// Real processes on 127.0.0.1: a coordinator/PS process (`disttrain train --cluster-port`) and worker
// processes (`disttrain node --roles worker`). The saved weights must be bit-identical to the
// in-process run — with 3 worker processes, and when one worker is killed with SIGKILL mid-run
// (its micro-batches are re-queued; DESIGN contracts 2 and 4).
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using DistTrain.Training.Checkpoints;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Tests.Runtime;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class MultiProcessClusterTests(ITestOutputHelper output) : IDisposable
{
    private readonly List<Process> _processes = [];

    /// <summary>The built CLI (the Release output of the solution this test runs from).</summary>
    internal static string Dll()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DistTrain.sln"))) dir = dir.Parent;
        var dll = Path.Combine(dir!.FullName, "src", "DistTrain.Cli", "bin", "Release", "net10.0", "disttrain.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: build the solution in Release first (scripts/test.sh does).");
        return dll;
    }

    /// <summary>The seed port a coordinator process was started with (StartCluster).</summary>
    private static int ClusterPort(Process coord) =>
        int.Parse(System.Text.RegularExpressions.Regex.Match(coord.StartInfo.Arguments, @"--cluster-port (\d+)").Groups[1].Value);

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private Process Start(string args, string name, string? netns = null, Action<string>? onLine = null, (string Name, string Value)? env = null)
    {
        var psi = netns is null
            ? new ProcessStartInfo("dotnet", $"\"{Dll()}\" {args}")
            : new ProcessStartInfo("ip", $"netns exec {netns} dotnet \"{Dll()}\" {args}");
        if (env is { } e) psi.Environment[e.Name] = e.Value;
        psi.RedirectStandardOutput = true; psi.RedirectStandardError = true; psi.UseShellExecute = false;
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { Log($"[{name}] {e.Data}"); onLine?.Invoke(e.Data); } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) Log($"[{name}!] {e.Data}"); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return p;
    }

    private void Log(string line) { try { output.WriteLine(line); } catch (InvalidOperationException) { } }

    private static TrainJob Job(string data, long steps) => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson,
        Dataset = data, Epochs = 3, BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Seed = 11, MaxSteps = steps,
        // A schedule that changes every step and augmented batches: a step or schedule off by one anywhere fails the hash.
        Schedule = "warmup:3+cosine", Augment = "crop:2,flip",
    };

    private static string TrainArgs(TrainJob job, string specFile) =>
        $"train --model \"{specFile}\" --dataset \"{job.Dataset}\" --epochs {job.Epochs} --batch-size {job.BatchSize} " +
        $"--micro-batch {job.MicroBatch} --optimizer {job.Optimizer} --lr {job.Lr} --seed {job.Seed} --max-steps {job.MaxSteps} " +
        $"--schedule {job.Schedule} --augment {job.Augment}";

    private static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private async Task<string> InProcess(TrainJob job, DistTrain.Cluster.Training.ModeOptions? mode = null)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-ref-").FullName;
        var r = await ClusterNode.RunLocal(job, 1, 1, dir, mode: mode).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(r.Error);
        return Sha(r.ModelPath!);
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _coordinatorLines = new(); // what the last coordinator printed

    /// <summary>Starts the coordinator process and the worker processes; returns the coordinator and the output folder.</summary>
    private (Process Coordinator, Process[] Workers, string Out) StartCluster(TrainJob job, int workers, string extra = "", string? outDir = null,
        int psNodes = 0, int psActors = 1, int? waitWorkers = null)
    {
        var specFile = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(specFile, job.ModelSpecJson);
        outDir ??= Directory.CreateTempSubdirectory("disttrain-mp-").FullName;
        int port = FreePort();
        using var listening = new ManualResetEventSlim();
        var coord = Start($"{TrainArgs(job, specFile)} --workers 0 --cluster-port {port} --wait-workers {waitWorkers ?? Math.Max(workers, 1)} --out \"{outDir}\" {extra}", "coordinator",
            onLine: line =>
            {
                _coordinatorLines.Enqueue(line);
                if (line.StartsWith("cluster seed node ", StringComparison.Ordinal)) listening.Set();
            });
        // The other processes bind ephemeral ports: started before the coordinator holds its port, one of them can be given it.
        listening.Wait(TimeSpan.FromSeconds(90));
        for (int i = 0; i < psNodes; i++)
            Start($"node --roles ps --ps-actors {psActors} --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", $"ps{i}");
        var ws = Enumerable.Range(0, workers)
            .Select(i => Start($"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", $"worker{i}")).ToArray();
        return (coord, ws, outDir);
    }

    [Fact]
    public async Task ShardsInTheirOwnProcessesGiveTheOneProcessWeights()
    {
        // Coordinator without shards, two `disttrain node --roles ps` processes holding one key range each, two workers.
        var job = Job(TestData.WriteIdx(200, 50), 12);
        var expected = await InProcess(job);
        var (coord, _, outDir) = StartCluster(job, 2, "--ps-shards 2 --ps-local 0", psNodes: 2);
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        Assert.Contains(_coordinatorLines, l => l.Contains("2 PS shard(s) (0 in this process)"));
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
    }

    /// <summary>
    /// kill -9 of a parameter-server process mid-run (DESIGN contract 4): a third `ps` process that found every range taken
    /// waits as a spare; the coordinator sees the lost shard's data-plane listener close, gives its range to the spare, rolls
    /// every shard back to the newest state it holds in memory (disttrain.replicate-every = 10 steps) and hands those steps out
    /// again. The weights equal the one-process run's bit for bit, and metrics.jsonl has each step once. With local-sgd's outer
    /// Nesterov momentum the buffer is shard state: the roll-back restores it too, or the bits would differ.
    /// </summary>
    [Theory]
    [InlineData("sync", "")]
    [InlineData("local-sgd", "")]
    [InlineData("local-sgd", "--outer-optimizer nesterov")]
    [InlineData("async", "")]
    public async Task KilledParameterServerProcessIsReplacedByASpareAndChangesNoBit(string modeName, string outer)
    {
        var mode = DistTrain.Cluster.Training.ModeOptions.Parse(modeName, modeName == "async" ? 0 : null, modeName == "local-sgd" ? 2 : null,
            outer.Length > 0 ? DistTrain.Cluster.Training.OuterOptimizer.Parse("nesterov", null, null) : null);
        string unit = Unit(modeName);
        var job = Job(TestData.WriteIdx(3000, 50), 200);
        var expected = await InProcess(job, mode);
        var (coord, _, outDir) = StartCluster(job, 0, $"--ps-shards 2 --ps-local 0 --mode {modeName} {outer}" + ModeArgs(modeName), waitWorkers: 2);
        int port = ClusterPort(coord);
        string seeds = $"--seed-nodes akka.tcp://disttrain@127.0.0.1:{port}";
        var owners = new[] { Start($"node --roles ps {seeds}", "ps0"), Start($"node --roles ps {seeds}", "ps1") };
        await WaitForLine(coord, l => l.Contains("shard 1 of 2 holds") || l.Contains("shard 0 of 2 holds"), count: 2);
        Start($"node --roles ps {seeds}", "spare");
        await WaitForLine(coord, l => l.Contains("waits as a spare"));
        for (int i = 0; i < 2; i++) Start($"node --roles worker {seeds}", $"worker{i}");
        var metrics = Path.Combine(outDir, "metrics.jsonl");
        await WaitForSteps(coord, metrics, modeName == "local-sgd" ? 12 : 16);
        Assert.False(coord.HasExited, "the run ended before a parameter server could be killed");
        owners[0].Kill();
        Log($"killed ps0 after {ReadLines(metrics)} lines of metrics");
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes after the kill");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        // Rolled back to a replicated step (a multiple of 10, past the start; async: a checkpoint's cut, every 10 steps of 4
        // micro-batches), and continued from there.
        var lost = Assert.Single(_coordinatorLines, l => l.Contains("lost (its data-plane listener") && l.Contains($"rolling back to {unit} "));
        long back = long.Parse(System.Text.RegularExpressions.Regex.Match(lost, $@"rolling back to {unit} (\d+)").Groups[1].Value);
        Assert.True(back > 0 && back % (modeName == "async" ? 40 : 10) == 0, $"rolled back to {unit} {back}: not a replicated one");
        Assert.Contains(_coordinatorLines, l => l.Contains($"every shard is back at {unit} {back}"));
        Assert.Equal(3, _coordinatorLines.Count(l => l.Contains(" of 2 holds [")));   // the two owners, then the spare
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
        var steps = File.ReadLines(metrics).Where(l => l.Contains("\"kind\":\"step\"")).Select(l =>
            System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToList();
        // One line per step (local-sgd: per round, labelled with its last step), each once.
        Assert.Equal(modeName == "local-sgd" ? Enumerable.Range(0, 100).Select(i => 2L * i + 1) : Enumerable.Range(0, 200).Select(i => (long)i), steps);
    }

    /// <summary>What a mode's versions count in the coordinator's lines.</summary>
    private static string Unit(string mode) => mode switch { "local-sgd" => "round", "async" => "update", _ => "step" };

    /// <summary>A mode's options in these tests. Async with staleness 0 is sequential, hence bit-reproducible, and rolls back
    /// to a checkpoint's cut: one every 10 steps.</summary>
    private static string ModeArgs(string mode) => mode switch
    {
        "local-sgd" => " --local-steps 2", "async" => " --staleness 0 --checkpoint-every 10", _ => "",
    };

    /// <summary>
    /// kill -9 of the coordinator's process mid-run, with a standby (`train --standby`, the same job options): the standby
    /// sees the coordinator's listener close, downs its node, becomes the cluster singleton and takes the run over. The shards
    /// rejoin it naming the versions they can roll back to; all roll back to the newest one they share and the steps from
    /// there are computed again. The weights equal the one-process run's bit for bit, metrics.jsonl has each step once, and
    /// every ps and worker process ends with the run.
    /// </summary>
    [Theory]
    [InlineData("sync")]
    [InlineData("local-sgd")]
    [InlineData("async")]
    public async Task KilledCoordinatorProcessIsReplacedByAStandbyAndChangesNoBit(string modeName)
    {
        var mode = DistTrain.Cluster.Training.ModeOptions.Parse(modeName, modeName == "async" ? 0 : null, modeName == "local-sgd" ? 2 : null);
        string unit = Unit(modeName), modeArgs = $"--ps-shards 2 --ps-local 0 --mode {modeName}" + ModeArgs(modeName);
        var job = Job(TestData.WriteIdx(3000, 50), 200);
        var expected = await InProcess(job, mode);
        var (coord, _, outDir) = StartCluster(job, 0, modeArgs, waitWorkers: 2);
        int port = ClusterPort(coord);
        string seeds = $"--seed-nodes akka.tcp://disttrain@127.0.0.1:{port}";
        var (standby, standbyLines) = StartStandby(job, port, modeArgs, outDir);
        var others = new List<Process> { Start($"node --roles ps {seeds}", "ps0"), Start($"node --roles ps {seeds}", "ps1") };
        for (int i = 0; i < 2; i++) others.Add(Start($"node --roles worker {seeds}", $"worker{i}"));
        var metrics = Path.Combine(outDir, "metrics.jsonl");
        await WaitForSteps(coord, metrics, modeName == "local-sgd" ? 12 : 16);
        Assert.False(coord.HasExited, "the run ended before the coordinator could be killed");
        coord.Kill();
        Log($"killed the coordinator after {ReadLines(metrics)} lines of metrics");
        Assert.True(standby.WaitForExit(TimeSpan.FromMinutes(3)), "the standby did not finish the run within 3 minutes after the kill");
        standby.WaitForExit();
        Assert.Equal(0, standby.ExitCode);
        var took = Assert.Single(standbyLines, l => l.Contains("took over the run: every shard rolls back to "));
        long back = long.Parse(System.Text.RegularExpressions.Regex.Match(took, $@"rolls back to {unit} (\d+)").Groups[1].Value);
        Assert.True(back > 0, $"rolled back to {unit} {back}: the start, not where the run was");
        Assert.Contains(standbyLines, l => l.Contains($"every shard is back at {unit} {back}"));
        Assert.Equal(2, standbyLines.Count(l => l.Contains(" rejoined at ")));
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
        var steps = File.ReadLines(metrics).Where(l => l.Contains("\"kind\":\"step\"")).Select(l =>
            System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToList();
        Assert.Equal(modeName == "local-sgd" ? Enumerable.Range(0, 100).Select(i => 2L * i + 1) : Enumerable.Range(0, 200).Select(i => (long)i), steps);
        foreach (var p in others)
        {
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "a ps or worker process did not end with the run");
            Assert.Equal(0, p.ExitCode);
        }
    }

    /// <summary>
    /// The chaos test of issue 14: a coordinator and a standby, 2 `ps` processes and a spare, 3 workers; every few seconds
    /// (once the run moved on from the last fault) a seeded random process is killed with SIGKILL and started again — a worker
    /// comes back as a new worker, a `ps` process as a spare, the coordinator as the standby of the one that took over. After
    /// 8 faults the run goes on undisturbed. The weights equal the fault-free run's bit for bit and metrics.jsonl has every
    /// step exactly once (the ledger: every micro-batch of every step applied once, or the weights would differ).
    /// </summary>
    [Fact]
    public async Task ChaosAProcessKilledEveryFewSecondsChangesNoBit()
    {
        var job = Job(TestData.WriteIdx(6000, 50), 700) with { Epochs = 10 };
        var expected = await InProcess(job);
        var specFile = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(specFile, job.ModelSpecJson);
        var outDir = Directory.CreateTempSubdirectory("disttrain-chaos-").FullName;
        var metrics = Path.Combine(outDir, "metrics.jsonl");
        string shards = "--ps-shards 2 --ps-local 0";
        var ports = new List<int>();
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        string Seeds() => "--seed-nodes " + string.Join(",", ports.Select(p => $"akka.tcp://disttrain@127.0.0.1:{p}"));
        Process Coordinator(int? leadPort)
        {
            int port = FreePort();
            ports.Add(port);
            using var ready = new ManualResetEventSlim();
            var args = leadPort is null ? $"--workers 0 --wait-workers 3 --cluster-port {port}" : $"--cluster-port {port} --standby akka.tcp://disttrain@127.0.0.1:{leadPort}";
            var p = Start($"{TrainArgs(job, specFile)} {shards} {args} --out \"{outDir}\"", $"coord{ports.Count}", onLine: l =>
            {
                lines.Enqueue(l);
                // A standby is one once the coordinator told it the run (before, its loss downs the whole cluster).
                if (l.StartsWith("cluster seed node ", StringComparison.Ordinal) || l.StartsWith("standby: the coordinator told it job ", StringComparison.Ordinal)) ready.Set();
            });
            Assert.True(ready.Wait(TimeSpan.FromSeconds(90)), "a coordinator process did not come up");
            return p;
        }
        var coordinators = new List<(Process P, int Port)> { (Coordinator(null), ports[0]) };
        coordinators.Add((Coordinator(ports[0]), ports[1]));
        int n = 0;
        Process Node(string role) => Start($"node --roles {role} {Seeds()}", $"{role}{++n}");
        var psProcs = new List<Process> { Node("ps"), Node("ps"), Node("ps") };
        var workers = new List<Process> { Node("worker"), Node("worker"), Node("worker") };

        var random = new Random(14);
        var schedule = new[] { "worker", "ps", "coordinator", "worker", "ps", "coordinator", "worker", "ps" }.OrderBy(_ => random.Next()).ToArray();
        await WaitForSteps(coordinators[0].P, metrics, 20);
        int faults = 0;
        foreach (var kind in schedule)
        {
            int lead = coordinators.FindIndex(c => !c.P.HasExited);
            if (lead < 0 || coordinators[lead].P.HasExited) break;
            int before = ReadLines(metrics);
            switch (kind)
            {
                case "worker":
                    int w = random.Next(workers.Count);
                    workers[w].Kill();
                    workers[w] = Node("worker");
                    break;
                case "ps":
                    int s = random.Next(psProcs.Count);
                    psProcs[s].Kill();
                    psProcs[s] = Node("ps");
                    break;
                default:
                    // The coordinator (the oldest coordinator process alive); it comes back as the standby of the one that takes over.
                    coordinators[lead].P.Kill();
                    int next = coordinators.FindIndex(lead + 1, c => !c.P.HasExited);
                    Assert.True(next > lead, "no standby to take over");
                    coordinators.Add((Coordinator(coordinators[next].Port), ports[^1]));
                    break;
            }
            faults++;
            Log($"fault {faults}: {kind} killed after {before} lines of metrics");
            // The next fault once the run moved on (a few seconds at most; bounded).
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (DateTime.UtcNow < deadline && ReadLines(metrics) < before + 3 && coordinators.Any(c => !c.P.HasExited)) await Task.Delay(100);
            Assert.True(ReadLines(metrics) >= before + 3 || coordinators.All(c => c.P.HasExited), $"the run did not move on within 90 s of fault {faults} ({kind})");
            await Task.Delay(1000);
        }
        var last = coordinators.First(c => !c.P.HasExited || c.P.ExitCode == 0).P;
        Assert.True(last.WaitForExit(TimeSpan.FromMinutes(4)), "the run did not end within 4 minutes of the last fault");
        last.WaitForExit();
        Assert.Equal(0, last.ExitCode);
        Assert.True(faults >= 8, $"only {faults} faults before the run ended: lengthen the run");
        Assert.Equal(schedule.Count(k => k == "coordinator"), lines.Count(l => l.Contains("took over the run: every shard rolls back to ")));
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
        var steps = File.ReadLines(metrics).Where(l => l.Contains("\"kind\":\"step\"")).Select(l =>
            System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToList();
        Assert.Equal(Enumerable.Range(0, 700).Select(i => (long)i), steps);
    }

    /// <summary>Starts `train --standby` for the coordinator on <paramref name="port"/> with the job's options and waits until it joined.</summary>
    private (Process Standby, System.Collections.Concurrent.ConcurrentQueue<string> Lines) StartStandby(TrainJob job, int port, string extra, string outDir)
    {
        var specFile = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(specFile, job.ModelSpecJson);
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var ready = new ManualResetEventSlim();
        var standby = Start($"{TrainArgs(job, specFile)} {extra} --standby akka.tcp://disttrain@127.0.0.1:{port} --out \"{outDir}\"", "standby",
            onLine: l => { lines.Enqueue(l); if (l.StartsWith("standby: the coordinator told it job ", StringComparison.Ordinal)) ready.Set(); });
        Assert.True(ready.Wait(TimeSpan.FromSeconds(90)), "the standby did not join");
        return (standby, lines);
    }

    /// <summary>A standby whose coordinator finishes the run exits with it: the singleton that moves to it when the coordinator's
    /// node leaves does not start the run again (it would truncate metrics.jsonl and wait for shards that are gone).</summary>
    [Fact]
    public void AStandbyExitsWhenItsCoordinatorFinishesTheRun()
    {
        var job = Job(TestData.WriteIdx(200, 50), 12);
        var (coord, _, outDir) = StartCluster(job, 0, "--ps-shards 1 --ps-local 0", waitWorkers: 1);
        int port = ClusterPort(coord);
        var (standby, standbyLines) = StartStandby(job, port, "--ps-shards 1", outDir);
        Start($"node --roles ps --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", "ps0");
        Start($"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", "worker0");
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator did not finish");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        var lines = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl"));
        Assert.True(standby.WaitForExit(TimeSpan.FromSeconds(60)), "the standby outlived the run");
        standby.WaitForExit();
        Assert.Equal(0, standby.ExitCode);
        Assert.Contains(standbyLines, l => l.Contains("the coordinator finished the run; nothing to take over"));
        Assert.Equal(lines, File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")));
    }

    /// <summary>
    /// Elastic (DESIGN contract 4): a worker process that joins a running job gets the current parameters and pulls work
    /// with the others; the weights are still the one-process run's.
    /// </summary>
    [Fact]
    public async Task AWorkerProcessThatJoinsMidRunPullsWorkAndChangesNoBit()
    {
        var job = Job(TestData.WriteIdx(3000, 50), 200);
        var expected = await InProcess(job);
        var (coord, _, outDir) = StartCluster(job, 1);
        await WaitForSteps(coord, Path.Combine(outDir, "metrics.jsonl"), 20);
        Assert.False(coord.HasExited, "the run ended before a second worker could join");
        int port = ClusterPort(coord);
        var late = Start($"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", "late-worker");
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        Assert.Contains(_coordinatorLines, l => l.Contains("joined (2 in all)"));
        Assert.True(late.WaitForExit(TimeSpan.FromSeconds(60)), "the late worker did not stop after the run");
        Assert.Equal(0, late.ExitCode);
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
    }

    /// <summary>
    /// A worker whose core throws (a test hook standing in for a bug) stops its actor instead of letting Akka restart it with a
    /// new data-plane port (the coordinator's death probe then downed the live node, and the bug threw again and again): the
    /// node leaves and exits 6 naming the failure, its micro-batches go to the other worker, and the same process restarted
    /// without the fault, as a supervisor would, joins again and pulls work. The weights are the one-process run's.
    /// </summary>
    [Fact]
    public async Task AWorkerWhoseCoreThrowsExitsForItsSupervisorAndTheRestartedProcessRejoinsWithoutChangingABit()
    {
        var job = Job(TestData.WriteIdx(6000, 50), 450); // long enough for the failed process's restart to join before the end
        var expected = await InProcess(job);
        var (coord, _, outDir) = StartCluster(job, 0, waitWorkers: 2);
        int port = ClusterPort(coord);
        string seeds = $"--seed-nodes akka.tcp://disttrain@127.0.0.1:{port}";
        string? steadyAt = null, restartedAt = null;
        static string? UpAt(string line) => System.Text.RegularExpressions.Regex.Match(line, @"node (akka\.tcp://\S+) is up") is { Success: true } m ? m.Groups[1].Value : null;
        var steady = Start($"node --roles worker {seeds}", "worker0", onLine: l => steadyAt ??= UpAt(l));
        var stderr = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var buggy = Start($"node --roles worker {seeds}", "buggy", env: ("DISTTRAIN_TEST_FAIL_AT_STEP", "30"));
        buggy.ErrorDataReceived += (_, e) => { if (e.Data is not null) stderr.Enqueue(e.Data); };
        Assert.True(buggy.WaitForExit(TimeSpan.FromSeconds(90)), "the worker whose core threw did not exit");
        buggy.WaitForExit();
        Assert.Equal(6, buggy.ExitCode);
        Assert.Contains(stderr, l => l.Contains("failed on") && l.Contains("DISTTRAIN_TEST_FAIL_AT_STEP") && l.Contains("joins again"));
        Assert.False(coord.HasExited, "the run ended before the failed worker could be restarted");
        var restarted = Start($"node --roles worker {seeds}", "restarted", onLine: l => restartedAt ??= UpAt(l));
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        Assert.NotNull(restartedAt);
        Assert.Contains(_coordinatorLines, l => l.StartsWith($"worker {restartedAt}/", StringComparison.Ordinal) && l.Contains(" joined ("));
        Assert.True(steady.WaitForExit(TimeSpan.FromSeconds(60)) && restarted.WaitForExit(TimeSpan.FromSeconds(60)), "a worker did not stop after the run");
        Assert.Equal(0, steady.ExitCode);   // the live worker was never downed
        Assert.Equal(0, restarted.ExitCode);
        Assert.NotNull(steadyAt);
        Assert.DoesNotContain(_coordinatorLines, l => l.Contains(steadyAt!) && l.Contains("down"));
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
    }

    /// <summary>
    /// The determinism audit with real processes: with --verify-fraction 1 a worker that has nothing left of the current step
    /// computes a second copy of one the other worker holds, and the shard compares their checksums. Honest workers: nothing
    /// differs and the weights are the one-process run's. A worker that flips a bit of every gradient frame it sends (a test
    /// hook standing in for a faulty host) is named by the audit.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TheDeterminismAuditComparesSecondCopiesAndNamesAWorkerThatCorruptsItsGradients(bool corrupt)
    {
        var job = Job(TestData.WriteIdx(600, 50), 40);
        var expected = corrupt ? null : await InProcess(job);
        var (coord, _, outDir) = StartCluster(job, 0, "--verify-fraction 1", waitWorkers: 2);
        int port = ClusterPort(coord);
        string? faulty = null;
        Start($"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", "worker0");
        Start($"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", "faulty", env: corrupt ? ("DISTTRAIN_TEST_CORRUPT_GRADIENTS", "1") : null,
            onLine: l => { if (System.Text.RegularExpressions.Regex.Match(l, @"node (akka\.tcp://\S+) is up") is { Success: true } m) faulty = m.Groups[1].Value; });
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        var summary = Assert.Single(_coordinatorLines, l => l.StartsWith("determinism audit: ") && l.Contains("computed twice"));
        var differ = _coordinatorLines.Where(l => l.StartsWith("determinism audit: step ")).ToList();
        if (!corrupt)
        {
            Assert.EndsWith("; 0 differed", summary);
            Assert.Empty(differ);
            Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
            return;
        }
        Assert.NotNull(faulty);
        Assert.NotEmpty(differ);
        Assert.All(differ, l => Assert.Contains(faulty!, l));   // every disagreement involves the faulty worker
        Assert.DoesNotContain("; 0 differed", summary);
    }

    /// <summary>Waits (at most 90 s) until the coordinator printed <paramref name="count"/> lines that match.</summary>
    private async Task WaitForLine(Process coord, Func<string, bool> match, int count = 1)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline && !coord.HasExited && _coordinatorLines.Count(match) < count) await Task.Delay(100);
        Assert.True(_coordinatorLines.Count(match) >= count, "the coordinator did not print the line waited for");
    }

    [Fact]
    public async Task ThreeWorkerProcessesGiveTheInProcessWeights()
    {
        var job = Job(TestData.WriteIdx(200, 50), 10);
        var expected = await InProcess(job);
        var (coord, _, outDir) = StartCluster(job, 3);
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes");
        Assert.Equal(0, coord.ExitCode);
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
    }

    [Fact]
    public async Task KilledWorkerLosesNoWorkAndChangesNoBit()
    {
        var job = Job(TestData.WriteIdx(400, 50), 30);
        var expected = await InProcess(job);
        var (coord, workers, outDir) = StartCluster(job, 3);
        // Kill one worker (SIGKILL: no goodbye) once training is under way.
        var metrics = Path.Combine(outDir, "metrics.jsonl");
        await WaitForSteps(coord, metrics, 3);
        Assert.False(coord.HasExited, "the run ended before a worker could be killed");
        workers[1].Kill();
        Log($"killed worker1 after {ReadLines(metrics)} steps");
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes after the kill");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        // How the loss is seen depends on the moment: a worker that held a lease has it handed out again when a shard sees its
        // connection end ("lost its connection to shard"); one that held none (three workers can lease a step and the next
        // between them) costs nothing. The weights are the same either way.
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
    }

    [Fact]
    public async Task AWorkerWhoseCoordinatorIsKilledExitsOnItsOwnSayingWhy()
    {
        // 200 steps: with 36 the run was over (the worker told to finish) by the time a quiet host's coordinator was killed.
        var job = Job(TestData.WriteIdx(3000, 50), 200);
        var config = Path.Combine(Directory.CreateTempSubdirectory("disttrain-cfg-").FullName, "short-lost.hocon");
        File.WriteAllText(config, "disttrain.coordinator-lost-timeout = 3s\nakka.remote.dot-netty.tcp.hostname = \"127.0.0.1\"\n");
        var (coord, _, outDir) = StartCluster(job, workers: 0); // waits for the one worker started here
        int port = ClusterPort(coord);
        var err = new List<string>();
        var worker = Start($"node --roles worker --config \"{config}\" --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", "orphan");
        worker.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (err) err.Add(e.Data); };
        await WaitForSteps(coord, Path.Combine(outDir, "metrics.jsonl"), 3);
        Assert.False(coord.HasExited, "the run ended before the coordinator could be killed");
        coord.Kill();
        Assert.True(worker.WaitForExit(TimeSpan.FromSeconds(90)), "the worker kept running without a coordinator");
        worker.WaitForExit();
        Assert.Equal(5, worker.ExitCode);
        lock (err) Assert.Contains(err, l => l.Contains("has seen no reachable coordinator for 3 s") && l.Contains("--resume"));
    }

    [Fact]
    public async Task CoordinatorKilledMidRunResumesFromItsCheckpointBitIdentical()
    {
        var job = Job(TestData.WriteIdx(400, 50), 30);
        var expected = await InProcess(job);
        var (coord, workers, outDir) = StartCluster(job, 2, "--checkpoint-every 5");
        // SIGKILL the coordinator process (and with it the PS shard) once a checkpoint is on disk and training went past it.
        var metrics = Path.Combine(outDir, "metrics.jsonl");
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !coord.HasExited &&
               (DistTrain.Training.Checkpoints.CheckpointSeries.List(outDir).Count == 0 || ReadLines(metrics) < 7)) await Task.Delay(50);
        Assert.False(coord.HasExited, "the run ended before the coordinator could be killed");
        coord.Kill();
        foreach (var w in workers) w.Kill(); // the cluster is gone; the whole job restarts
        coord.WaitForExit();
        var left = DistTrain.Training.Checkpoints.CheckpointSeries.List(outDir);
        Log($"killed the coordinator after {ReadLines(metrics)} metric lines; checkpoints: {string.Join(", ", left.Select(c => c.Step))}");
        Assert.False(File.Exists(Path.Combine(outDir, "model.safetensors")));
        Assert.True(left[0].Step < 30);

        var (again, _, _) = StartCluster(job, 2, $"--checkpoint-every 5 --resume \"{outDir}\"", outDir);
        Assert.True(again.WaitForExit(TimeSpan.FromMinutes(3)), "the resumed coordinator did not finish within 3 minutes");
        Assert.Equal(0, again.ExitCode);
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
        // It resumed from the newest checkpoint, not from step 0 (which gives the same final hash), and metrics.jsonl,
        // continued, has every step once although the steps after the checkpoint were computed twice.
        long newest = left.Max(c => c.Step);
        Assert.True(newest > 0);
        Assert.Contains(_coordinatorLines, l => l.StartsWith("resuming from checkpoint ", StringComparison.Ordinal) && l.Contains($"(step {newest},"));
        var steps = File.ReadLines(Path.Combine(outDir, "metrics.jsonl")).Where(l => l.Contains("\"kind\":\"step\"")).Select(l =>
            System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToList();
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), steps);
    }

    [Fact]
    public void NodeWhoseSeedCannotBeReachedExitsWithAClearErrorAfterTheJoinTimeout()
    {
        var config = Path.Combine(Directory.CreateTempSubdirectory("disttrain-cfg-").FullName, "short-join.hocon");
        File.WriteAllText(config, "disttrain.join-timeout = 4s\nakka.remote.dot-netty.tcp.hostname = \"127.0.0.1\"\n");
        int nobody = FreePort(); // nothing listens there
        var lines = new List<string>();
        var node = Start($"node --roles worker --config \"{config}\" --seed-nodes akka.tcp://disttrain@127.0.0.1:{nobody}", "lonely");
        node.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        node.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        var clock = Stopwatch.StartNew();
        Assert.True(node.WaitForExit(TimeSpan.FromSeconds(90)), "disttrain node kept waiting for an unreachable seed node");
        node.WaitForExit(); // drain the redirected streams
        Assert.Equal(3, node.ExitCode);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(4), $"exited after {clock.Elapsed}, before the 4 s join timeout");
        string err;
        lock (lines) err = string.Join("\n", lines);
        Assert.Contains("did not join the cluster within 4s", err);
        Assert.Contains($"127.0.0.1:{nobody}", err);
        // The problem in one line: none of Akka's retries and gated addresses (NodeLog drops them).
        lock (lines) Assert.Single(lines);
    }

    [Fact]
    public async Task WorkerBehindACutLinkIsDownedAndItsWorkRedoneWithoutChangingABit()
    {
        // A second "host": worker B runs in its own network namespace, joined to this one by a veth pair; remoting over TLS.
        // Cutting the link (B's end down) leaves B's sockets open but silent — no RST, no FIN — so only
        // Akka's failure detector and the split-brain resolver can tell; the coordinator side keeps the
        // majority role, downs B, re-queues its leases, and the run ends with the in-process weights.
        using var net = VethNamespace.Create();
        // 120 steps (1,600 samples, 50 steps an epoch): the whole run of 30 steps this test used to have took ~2 s, and once
        // the cut came only after its last step (B never left during the run, and the test failed for the wrong reason).
        var job = Job(TestData.WriteIdx(1600, 50), 120);
        var expected = await InProcess(job);
        var (coord, outDir) = StartTwoHosts(net, job, """
            akka.cluster.failure-detector.acceptable-heartbeat-pause = 2s
            akka.cluster.split-brain-resolver.stable-after = 3s
            """, "cut", ("workerA", "workerB"));

        var metrics = Path.Combine(outDir, "metrics.jsonl");
        await WaitForSteps(coord, metrics, 3);
        Assert.False(coord.HasExited, "the run ended before the link could be cut");
        net.CutPeerLink();
        int linesAtCut = ReadLines(metrics);
        Log($"cut the link to worker B after {linesAtCut} metrics lines");
        Assert.True(linesAtCut < job.MaxSteps, $"the run had logged {linesAtCut} lines of {job.MaxSteps} steps when the link was cut: too late to test anything");
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes after the cut");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        // Whatever B held at the cut went to A when its lease ran out (reported then), or B held nothing; either way the run
        // ends without it and without a changed bit. Whether Akka downs B before the coordinator finishes is timing.
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
    }

    /// <summary>
    /// The coordinator's host cut off (its link down: no RST, no FIN, the process runs on), with three coordinator-eligible
    /// nodes: the coordinator in its own network namespace, two standbys, both `ps` processes and both workers on this host.
    /// The split-brain resolver counts coordinator nodes (keep-majority, role coordinator): this side holds two of three, downs
    /// the cut-off node and keeps running, the singleton moves to the older standby, which takes the run over from the
    /// shards' kept state; the cut-off side holds one of three and downs itself, so its coordinator stops. The standby writes
    /// the model to its own folder (the cut-off host's disk is gone with it) with the one-process run's bits. With only two
    /// coordinator-eligible nodes the 1–1 tie goes to the lower address, which may be the cut-off one (docs/architecture.md).
    /// </summary>
    [Fact]
    public async Task ACoordinatorHostCutOffIsDownedByTheMajorityOfThreeCoordinatorNodesAndAStandbyFinishesTheRun()
    {
        using var net = VethNamespace.Create();
        var job = Job(TestData.WriteIdx(3000, 50), 200);
        var expected = await InProcess(job);
        var config = Path.Combine(Directory.CreateTempSubdirectory("disttrain-cfg-").FullName, "cut-coordinator.hocon");
        File.WriteAllText(config, """
            disttrain { join-timeout = 60s, data-plane.host = "" }
            akka.cluster.failure-detector.acceptable-heartbeat-pause = 3s
            akka.cluster.split-brain-resolver.stable-after = 3s
            """);
        var specFile = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(specFile, job.ModelSpecJson);
        var certs = Directory.CreateTempSubdirectory("disttrain-certs-").FullName;
        MakeCerts(certs, net.HostAddress, net.PeerAddress);
        string Node(string host) => $"--hostname {host} --config \"{config}\" --tls-cert \"{Path.Combine(certs, host + ".p12")}\" --tls-ca \"{Path.Combine(certs, "ca.pem")}\"";
        int port = FreePort();
        string seed = $"akka.tcp://disttrain@{net.PeerAddress}:{port}", modeArgs = "--ps-shards 2 --ps-local 0";
        var coordOut = Directory.CreateTempSubdirectory("disttrain-cut-coord-").FullName;
        var standbyOut = Directory.CreateTempSubdirectory("disttrain-cut-standby-").FullName;
        using var listening = new ManualResetEventSlim();
        var coord = Start($"{TrainArgs(job, specFile)} {modeArgs} --workers 0 --cluster-port {port} --wait-workers 2 --out \"{coordOut}\" {Node(net.PeerAddress)}",
            "coordinator", net.Namespace, onLine: l => { if (l.StartsWith("cluster seed node ", StringComparison.Ordinal)) listening.Set(); });
        Assert.True(listening.Wait(TimeSpan.FromSeconds(90)), "the coordinator did not start listening");
        var standbys = new List<(Process Process, System.Collections.Concurrent.ConcurrentQueue<string> Lines)>();
        foreach (var name in new[] { "standby0", "standby1" })
        {
            var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
            using var ready = new ManualResetEventSlim();
            var p = Start($"{TrainArgs(job, specFile)} {modeArgs} --standby {seed} --out \"{standbyOut}\" {Node(net.HostAddress)}", name,
                onLine: l => { lines.Enqueue(l); if (l.StartsWith("standby: the coordinator told it job ", StringComparison.Ordinal)) ready.Set(); });
            Assert.True(ready.Wait(TimeSpan.FromSeconds(90)), $"{name} did not join");
            standbys.Add((p, lines));
        }
        var others = new List<Process>();
        for (int i = 0; i < 2; i++) others.Add(Start($"node --roles ps --seed-nodes {seed} {Node(net.HostAddress)}", $"ps{i}"));
        for (int i = 0; i < 2; i++) others.Add(Start($"node --roles worker --seed-nodes {seed} {Node(net.HostAddress)}", $"worker{i}"));
        var metrics = Path.Combine(coordOut, "metrics.jsonl");
        await WaitForSteps(coord, metrics, 16);
        Assert.False(coord.HasExited, "the run ended before the coordinator's host could be cut off");
        net.CutPeerLink();
        Log($"cut the coordinator's link after {ReadLines(metrics)} lines of metrics");

        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (DateTime.UtcNow < deadline && !standbys.Any(s => s.Process.HasExited)) await Task.Delay(200);
        var (finisher, finisherLines) = Assert.Single(standbys, s => s.Lines.Any(l => l.Contains("took over the run: every shard rolls back to ")));
        // Its own folder has no metrics of the run (they stayed on the lost host): it goes on from the newest state the shards
        // share (where they stopped, or a state kept every 10 steps) instead of step 0, and says where its metrics.jsonl begins.
        var took = Assert.Single(finisherLines, l => l.Contains("took over the run: every shard rolls back to "));
        long back = long.Parse(System.Text.RegularExpressions.Regex.Match(took, @"rolls back to step (\d+)").Groups[1].Value);
        Assert.True(back >= 10, took);
        Assert.Contains(finisherLines, l => l.Contains($"metrics.jsonl in {standbyOut} begins at step {back}"));
        Assert.True(finisher.WaitForExit(TimeSpan.FromMinutes(1)), "the standby that took over did not finish the run");
        finisher.WaitForExit();
        Assert.Equal(0, finisher.ExitCode);
        Assert.Equal(expected, Sha(Path.Combine(standbyOut, "model.safetensors")));
        Assert.True(coord.WaitForExit(TimeSpan.FromSeconds(90)), "the cut-off coordinator kept running: its side should have downed itself");
        foreach (var p in others.Concat(standbys.Select(s => s.Process)))
        {
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "a process on the majority side did not end with the run");
            Assert.Equal(0, p.ExitCode);
        }
    }

    /// <summary>
    /// A worker behind a slow link (its namespace's veth shaped by tbf to 1 Mbit/s both ways; the other worker and the
    /// coordinator, which holds the shards, on this host): each of its micro-batches takes the push of the weights and the
    /// gradient's way back over that link, tens of times a fast worker's micro-batch. The coordinator hands the micro-batches it
    /// holds to the fast worker as backup copies once they are twice the median micro-batch time old (disttrain.backup-multiple),
    /// the shards keep whichever copy is complete first and compare the other's checksums: the weights equal the one-process
    /// run's bit for bit, and no copy differed. How fast it runs is scripts/slow-link-bench.sh's business (docs/benchmarks.md).
    /// </summary>
    [Fact]
    public async Task AWorkerBehindASlowLinkIsBackedUpAndChangesNoBit()
    {
        using var net = VethNamespace.Create();
        net.Shape("1mbit");
        // 120 steps: the slow worker asks for work only every few hundred milliseconds (its link is full of the pushes it
        // lags behind), so the run must last long enough for it to hold micro-batches once the median is known.
        var job = Job(TestData.WriteIdx(1600, 50), 120);
        var expected = await InProcess(job);
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (coord, outDir) = StartTwoHosts(net, job, "", "slow", ("fast", "slow"), lines.Enqueue);
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
        var summary = Assert.Single(lines, l => l.StartsWith("backup copies: "));
        Assert.Matches(@"^backup copies: [1-9]\d* straggling", summary);
        Assert.Contains(lines, l => l.StartsWith("backup copy: ") && l.Contains($"held by akka.ssl.tcp://disttrain@{net.PeerAddress}:"));
        Assert.DoesNotContain(lines, l => l.StartsWith("determinism audit: step ")); // every compared copy was equal
    }

    /// <summary>
    /// Two hosts on a network: this one (the coordinator, which holds the shards, and worker <paramref name="names"/>.Here) and
    /// <paramref name="net"/>'s namespace (worker <paramref name="names"/>.There). Remoting needs TLS, each host with its own
    /// certificate of one cluster CA (scripts/make-certs.sh); <paramref name="hocon"/> is added to every node's config.
    /// </summary>
    private (Process Coordinator, string Out) StartTwoHosts(VethNamespace net, TrainJob job, string hocon, string label,
        (string Here, string There) names, Action<string>? onLine = null)
    {
        var config = Path.Combine(Directory.CreateTempSubdirectory("disttrain-cfg-").FullName, "two-hosts.hocon");
        File.WriteAllText(config, "disttrain { join-timeout = 60s, data-plane.host = \"\" }\n" + hocon);
        var specFile = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(specFile, job.ModelSpecJson);
        var outDir = Directory.CreateTempSubdirectory($"disttrain-{label}-").FullName;
        int port = FreePort();
        var certs = Directory.CreateTempSubdirectory("disttrain-certs-").FullName;
        MakeCerts(certs, net.HostAddress, net.PeerAddress);
        string Node(string host) => $"--hostname {host} --config \"{config}\" --tls-cert \"{Path.Combine(certs, host + ".p12")}\" --tls-ca \"{Path.Combine(certs, "ca.pem")}\"";
        var seed = $"akka.tcp://disttrain@{net.HostAddress}:{port}";
        var coord = Start($"{TrainArgs(job, specFile)} --workers 0 --cluster-port {port} --wait-workers 2 --out \"{outDir}\" {Node(net.HostAddress)}", "coordinator", onLine: onLine);
        Start($"node --roles worker --seed-nodes {seed} {Node(net.HostAddress)}", names.Here);
        Start($"node --roles worker --seed-nodes {seed} {Node(net.PeerAddress)}", names.There, net.Namespace);
        return (coord, outDir);
    }

    /// <summary>scripts/make-certs.sh: a cluster CA and one certificate per host in <paramref name="dir"/>.</summary>
    private static void MakeCerts(string dir, params string[] hosts)
    {
        var root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Dll())!, "..", "..", "..", "..", ".."));
        var psi = new ProcessStartInfo("bash", [Path.Combine(root, "scripts", "make-certs.sh"), "--out", dir, .. hosts]) { RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(60_000) && p.ExitCode == 0, $"make-certs.sh failed: {err}");
    }

    /// <summary>Waits (at most 2 minutes) until <paramref name="metrics"/> has <paramref name="lines"/> lines or the coordinator exited.</summary>
    private static async Task WaitForSteps(Process coord, string metrics, int lines)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !coord.HasExited && (!File.Exists(metrics) || ReadLines(metrics) < lines)) await Task.Delay(100);
    }

    private static int ReadLines(string file)
    {
        try
        {
            using var s = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(s);
            return r.ReadToEnd().Count(c => c == '\n');
        }
        catch (IOException) { return 0; }
    }

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.Dispose();
        }
    }
}

/// <summary>A network namespace joined to this one by a veth pair (10.77.N.1 here, 10.77.N.2 inside);
/// needs root and iproute2 (scripts/setup.sh installs it). Deleted on dispose.</summary>
internal sealed class VethNamespace : IDisposable
{
    private readonly string _hostLink, _peerLink;

    private VethNamespace(int n)
    {
        Namespace = $"dt-test-{n}";
        _hostLink = $"dtv-h{n}";
        _peerLink = $"dtv-p{n}";
        HostAddress = $"10.77.{n}.1";
        PeerAddress = $"10.77.{n}.2";
    }

    public string Namespace { get; }
    public string HostAddress { get; }
    public string PeerAddress { get; }

    public static VethNamespace Create()
    {
        Assert.True(Environment.UserName == "root", "this test makes a network namespace and needs root (CI runs as root)");
        var net = new VethNamespace(Random.Shared.Next(10, 250));
        net.Dispose(); // leftovers of a crashed earlier run with the same number
        Ip($"netns add {net.Namespace}");
        Ip($"link add {net._hostLink} type veth peer name {net._peerLink}");
        Ip($"link set {net._peerLink} netns {net.Namespace}");
        Ip($"addr add {net.HostAddress}/24 dev {net._hostLink}");
        Ip($"link set {net._hostLink} up");
        Ip($"netns exec {net.Namespace} ip addr add {net.PeerAddress}/24 dev {net._peerLink}");
        Ip($"netns exec {net.Namespace} ip link set {net._peerLink} up");
        Ip($"netns exec {net.Namespace} ip link set lo up");
        return net;
    }

    /// <summary>Shapes both directions of the link to <paramref name="rate"/> (tbf on each end; e.g. 1mbit).</summary>
    public void Shape(string rate)
    {
        Ip($"netns exec {Namespace} tc qdisc add dev {_peerLink} root tbf rate {rate} burst 8kb latency 400ms");
        var psi = new ProcessStartInfo("tc", $"qdisc add dev {_hostLink} root tbf rate {rate} burst 8kb latency 400ms") { RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"tc failed ({p.ExitCode}): {err.Trim()}; run scripts/setup.sh (iproute2)");
    }

    /// <summary>Takes the namespace's end of the link down: packets either way are dropped, sockets stay open.</summary>
    public void CutPeerLink() => Ip($"netns exec {Namespace} ip link set {_peerLink} down");

    private static void Ip(string args, bool check = true)
    {
        var psi = new ProcessStartInfo("ip", args) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException("`ip` (iproute2) is missing; run scripts/setup.sh.", e); }
        using (p)
        {
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (check && p.ExitCode != 0) throw new InvalidOperationException($"ip {args} failed ({p.ExitCode}): {err.Trim()}");
        }
    }

    public void Dispose()
    {
        Ip($"netns del {Namespace}", check: false);
        Ip($"link del {_hostLink}", check: false);
    }
}
