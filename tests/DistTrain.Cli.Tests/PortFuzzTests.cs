// Fuzzing every listening port of a small running cluster (issue 15's "must hold"): a coordinator, a `ps` and a worker
// process on 127.0.0.1 (the local configuration: Akka without TLS, the worst case), and while they train, a seeded,
// bounded stream of stranger connections to each Akka port and each data-plane listener (PortFuzzer), plus a flood of
// silent connections past the listeners' connection cap. Must hold: every process keeps running and ends cleanly, the
// weights are bit-identical to the one-process run, each process's resident memory grows by at most a small multiple of
// the bytes sent to it, its thread count stays bounded by the connection cap, half-sent frames are closed by the
// listener's timeouts, and no training step takes longer than 2 s.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using DistTrain.Cli.Tests.Support;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Tests.Runtime;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class PortFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly DisttrainProcesses _procs = new(output);

    private const int MaxConnections = 16, CasesPerPort = 60, Seed = 15;

    [Fact]
    public async Task Fuzzing_every_listening_port_of_a_training_cluster_changes_no_bit_and_costs_bounded_memory_threads_and_time()
    {
        var job = Job();
        // The one-process run for the weights, beside the cluster's (it only has to be done by the end).
        var referenceRun = ClusterNode.RunLocal(job, 1, 1, Directory.CreateTempSubdirectory("disttrain-ref-").FullName);

        // Short handshake and read timeouts and a small connection cap, so what a stranger holds is given back within
        // the test, and the flood goes past the cap.
        var root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(MultiProcessClusterTests.Dll())!, "..", "..", "..", "..", ".."));
        var dir = Directory.CreateTempSubdirectory("disttrain-fuzz-").FullName;
        var config = Path.Combine(dir, "fuzz.hocon");
        File.WriteAllText(config, File.ReadAllText(Path.Combine(root, "cluster-config", "local.hocon")) +
            $"\ndisttrain.data-plane {{ hello-timeout = 2s, read-timeout = 1s, max-connections = {MaxConnections} }}\n");
        var spec = Path.Combine(dir, "tiny.json");
        File.WriteAllText(spec, job.ModelSpecJson);
        var outDir = Path.Combine(dir, "out");
        int port = FreePort();
        var coord = _procs.Start(TrainArgs(job, spec) + $" --workers 0 --ps-shards 1 --ps-local 0 --wait-workers 1 --cluster-port {port} --config \"{config}\" --out \"{outDir}\"", "coordinator");
        await _procs.WaitForLine(coord, l => l.StartsWith("cluster seed node ", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
        string seeds = $"--seed-nodes akka.tcp://disttrain@127.0.0.1:{port}";
        var ps = _procs.Start($"node --roles ps --config \"{config}\" {seeds}", "ps");
        var worker = _procs.Start($"node --roles worker --config \"{config}\" {seeds}", "worker");
        var all = new[] { (Name: "coordinator", P: coord), (Name: "ps", P: ps), (Name: "worker", P: worker) };

        // Training under way (and the coordinator's lazily opened listener up: it receives the replicated state).
        var metrics = Path.Combine(outDir, "metrics.jsonl");
        var clock = Stopwatch.StartNew();
        while ((StepLines(metrics).Count < 12 || ProcFacts.ListeningPorts(coord.Id).Length < 2) && !coord.HasExited && clock.Elapsed < TimeSpan.FromSeconds(90))
            await Task.Delay(50);
        Assert.False(coord.HasExited, "the run ended before the fuzzing began");
        long fuzzFromStep = StepLines(metrics).Count;

        var fuzzers = new List<(int Process, PortFuzzer Fuzzer)>();
        for (int i = 0; i < all.Length; i++)
            foreach (var p in ProcFacts.ListeningPorts(all[i].P.Id))
            {
                var ep = new IPEndPoint(IPAddress.Loopback, p);
                fuzzers.Add((i, new PortFuzzer(ep, Stranger.IsDataPlane(ep, waitMs: 500), Seed * 100 + fuzzers.Count)));
            }
        foreach (var (i, f) in fuzzers) _procs.Log($"fuzzing {all[i].Name} {f.Target} ({(IsData(f) ? "data plane" : "akka")})");
        Assert.Equal(3, fuzzers.Count(f => !IsData(f.Fuzzer)));
        Assert.True(fuzzers.Count(f => IsData(f.Fuzzer)) >= 3, "expected a data-plane listener on each process");

        var peaks = ResourcePeaks.Start(all.Select(a => a.P).ToArray());

        // A flood of silent connections, three times the cap, on every data-plane listener: the listener keeps at most the cap
        // (one thread each) and closes the rest; the handshake timeout closes the kept ones.
        var flood = new List<Socket>();
        foreach (var (_, f) in fuzzers.Where(f => IsData(f.Fuzzer)))
            for (int c = 0; c < 3 * MaxConnections; c++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(f.Target);
                flood.Add(s);
            }
        var fuzzClock = Stopwatch.StartNew();
        await Task.WhenAll(fuzzers.Select(f => Task.Run(() => f.Fuzzer.Run(CasesPerPort))));
        _procs.Log($"fuzzed {fuzzers.Sum(f => f.Fuzzer.Cases)} cases, {fuzzers.Sum(f => f.Fuzzer.BytesSent) / 1024} KB, in {fuzzClock.Elapsed.TotalSeconds:0.0} s");
        foreach (var (name, p) in all) Assert.False(p.HasExited, $"the {name} process ended during the fuzzing");
        Assert.False(coord.HasExited, "the run ended before the fuzzing did: nothing was fuzzed against a live run to the end");

        // Half-sent frames on the data plane are closed by the listener (hello timeout 2 s, read timeout 1 s).
        var held = fuzzers.Where(f => IsData(f.Fuzzer)).SelectMany(f => f.Fuzzer.Held).ToList();
        Assert.NotEmpty(held);
        foreach (var s in held) Assert.True(ClosedWithin(s, TimeSpan.FromSeconds(4)), "a half-sent frame kept its connection open past the listener's timeouts");
        await Task.Delay(500);
        await peaks.Stop();
        foreach (var s in flood.Concat(fuzzers.SelectMany(f => f.Fuzzer.Held))) s.Dispose();

        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        foreach (var (name, p) in all)
        {
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), $"the {name} process did not end with the run");
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
            Assert.DoesNotContain(_procs.Lines(p), l => l.Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase));
        }
        var reference = await referenceRun.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(reference.Error);
        Assert.Equal(Sha(reference.ModelPath!), Sha(Path.Combine(outDir, "model.safetensors")));

        for (int i = 0; i < all.Length; i++)
        {
            long sent = fuzzers.Where(f => f.Process == i).Sum(f => f.Fuzzer.BytesSent); // the flood sends nothing
            int listeners = fuzzers.Count(f => f.Process == i && IsData(f.Fuzzer));
            peaks.AssertBounded(i, all[i].Name, sent, listeners * MaxConnections + 16, _procs.Log);
        }

        // No pause: every step logged from the fuzzing on took at most 2 s.
        var slow = StepLines(metrics).Skip((int)fuzzFromStep).Where(s => s.Seconds > 2).ToList();
        Assert.True(slow.Count == 0, "steps longer than 2 s while fuzzed: " + string.Join(", ", slow.Select(s => $"{s.Step} ({s.Seconds:0.00} s)")));
    }

    private static bool IsData(PortFuzzer f) => f.IsDataPlane;

    /// <summary>A run long enough (320 short steps) for strangers to be at work while it trains.</summary>
    internal static TrainJob Job() => new()
    {
        ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson, Dataset = TestData.WriteIdx(3200, 50), Epochs = 5,
        BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Seed = 11, MaxSteps = 320, Schedule = "warmup:3+cosine",
    };

    /// <summary>`disttrain train` with <paramref name="job"/>'s model (written to <paramref name="spec"/>), data and hyper-parameters.</summary>
    internal static string TrainArgs(TrainJob job, string spec) =>
        $"train --model \"{spec}\" --dataset \"{job.Dataset}\" --epochs {job.Epochs} --batch-size {job.BatchSize} --micro-batch {job.MicroBatch} " +
        $"--optimizer {job.Optimizer} --lr {job.Lr} --seed {job.Seed} --max-steps {job.MaxSteps} --schedule {job.Schedule}";

    /// <summary>The step lines of metrics.jsonl: step and duration.</summary>
    internal static List<(long Step, double Seconds)> StepLines(string file)
    {
        var steps = new List<(long, double)>();
        try
        {
            using var s = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(s);
            string? line;
            while ((line = r.ReadLine()) is not null)
            {
                if (!line.Contains("\"kind\":\"step\"", StringComparison.Ordinal)) continue;
                try
                {
                    var e = JsonDocument.Parse(line).RootElement;
                    steps.Add((e.GetProperty("step").GetInt64(), e.GetProperty("step_s").GetDouble()));
                }
                catch (JsonException) { } // a line being written
            }
        }
        catch (IOException) { }
        return steps;
    }

    /// <summary>Whether the peer closes <paramref name="s"/> (end of stream or reset) within <paramref name="limit"/>; what it
    /// sends before (a challenge) is read and ignored.</summary>
    private static bool ClosedWithin(Socket s, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        var buffer = new byte[256];
        while (clock.Elapsed < limit)
        {
            s.ReceiveTimeout = Math.Max(1, (int)(limit - clock.Elapsed).TotalMilliseconds);
            try { if (s.Receive(buffer) == 0) return true; }
            catch (SocketException e) { return e.SocketErrorCode != SocketError.TimedOut && e.SocketErrorCode != SocketError.WouldBlock; }
        }
        return false;
    }

    internal static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    internal static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    public void Dispose() => _procs.Dispose();
}
