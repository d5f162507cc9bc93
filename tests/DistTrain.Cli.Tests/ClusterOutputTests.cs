// What a person sees from a real local cluster (a coordinator process and worker processes on 127.0.0.1): a
// successful run prints no Akka warnings, errors or stack traces in any process, its metrics.jsonl epoch records
// carry the epoch's real training loss, samples and time. (A real problem in one line: MultiProcessClusterTests'
// unreachable seed, NodeLogTests.)
using System.Diagnostics;
using System.Text.Json;
using DistTrain.Cluster.Tests.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class ClusterOutputTests(ITestOutputHelper output) : IDisposable
{
    private readonly ClusterProcesses _cluster = new(output);

    internal static readonly string[] Forbidden = ["WARNING", "ERROR", "Exception", "   at "];

    [Fact]
    public void CleanRunPrintsNoWarningsAndItsEpochRecordsCarryTheEpochsSteps()
    {
        var data = TestData.WriteIdx(96, 32);
        var (coord, workers, outDir) = _cluster.Start(data, workers: 2, "--epochs 2 --batch-size 32 --micro-batch 8");
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(2)), "the coordinator did not finish within 2 minutes");
        foreach (var w in workers) Assert.True(w.WaitForExit(TimeSpan.FromSeconds(60)), "a worker kept running after the run");
        foreach (var p in workers.Prepend(coord)) { p.WaitForExit(); Assert.Equal(0, p.ExitCode); }

        var lines = _cluster.Lines();
        Assert.Contains(lines, l => l.Text.StartsWith("trained 6 steps", StringComparison.Ordinal));
        foreach (var (who, text) in lines)
            Assert.False(Forbidden.Any(f => text.Contains(f, StringComparison.Ordinal)), $"[{who}] printed: {text}");

        // Each epoch record against the step records of its epoch: the sample-weighted mean loss and accuracy, the sample count.
        var records = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        var steps = records.Where(r => r.GetProperty("kind").GetString() == "step").ToArray();
        var epochs = records.Where(r => r.GetProperty("kind").GetString() == "epoch").ToArray();
        Assert.Equal(6, steps.Length);
        Assert.Equal(2, epochs.Length);
        foreach (var e in epochs)
        {
            int epoch = e.GetProperty("epoch").GetInt32();
            var mine = steps.Where(s => s.GetProperty("epoch").GetInt32() == epoch).ToArray();
            Assert.Equal(3, mine.Length);
            double samples = mine.Sum(s => s.GetProperty("samples").GetDouble());
            double loss = mine.Sum(s => s.GetProperty("loss").GetDouble() * s.GetProperty("samples").GetDouble()) / samples;
            double acc = mine.Sum(s => s.GetProperty("train_accuracy").GetDouble() * s.GetProperty("samples").GetDouble()) / samples;
            Assert.Equal(96, samples);
            Assert.Equal(samples, e.GetProperty("samples").GetDouble());
            Assert.Equal(loss, e.GetProperty("train_loss").GetDouble(), 1e-9);
            Assert.Equal(acc, e.GetProperty("train_accuracy").GetDouble(), 1e-9);
            Assert.True(e.GetProperty("seconds").GetDouble() > 0, $"epoch {epoch} took {e.GetProperty("seconds")} s");
        }
        Assert.Equal(JsonValueKind.Number, epochs[^1].GetProperty("test_accuracy").ValueKind); // only the end of the run evaluates
    }

    [Fact]
    public void AWorkerWhoseCoordinatorDiesSaysWhatToDoAndExits()
    {
        var (coord, workers, outDir) = _cluster.Start(TestData.WriteIdx(64, 16), workers: 1, "--epochs 100000 --max-steps 100000 --batch-size 32 --checkpoint-every -1");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && !_cluster.Lines().Any(l => l.Who == "coordinator" && l.Text.StartsWith("step 20/", StringComparison.Ordinal)))
            Thread.Sleep(100);
        Assert.False(coord.HasExited, "the run ended before its coordinator could be killed");
        coord.Kill(); // SIGKILL: no goodbye
        var worker = workers[0];
        Assert.True(worker.WaitForExit(TimeSpan.FromSeconds(60)), "the worker kept running without its coordinator");
        worker.WaitForExit();
        Assert.Equal(5, worker.ExitCode);
        var said = _cluster.Lines().Where(l => l.Who.StartsWith("worker0", StringComparison.Ordinal)).Select(l => l.Text).ToArray();
        foreach (var text in said)
            Assert.False(Forbidden.Any(f => text.Contains(f, StringComparison.Ordinal)), $"the worker printed: {text}");
        Assert.Contains(said, l => l.Contains("holds the run's coordinator") && l.Contains("--resume"));
        Assert.Contains("was removed from the cluster before the run ended", said[^1]);
    }

    public void Dispose() => _cluster.Dispose();
}

/// <summary>`disttrain` processes of one test, every line they print kept with who printed it.</summary>
internal sealed class ClusterProcesses(ITestOutputHelper output) : IDisposable
{
    private readonly List<Process> _processes = [];
    private readonly List<(string Who, string Text)> _lines = [];

    public static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public (string Who, string Text)[] Lines() { lock (_lines) return _lines.ToArray(); }

    public Process Run(string args, string name, Action<string>? onLine = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet", $"\"{MultiProcessClusterTests.Dll()}\" {args}")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi)!;
        void Take(string who, string? text)
        {
            if (text is null) return;
            lock (_lines) _lines.Add((who, text));
            try { output.WriteLine($"[{who}] {text}"); } catch (InvalidOperationException) { }
            onLine?.Invoke(text);
        }
        p.OutputDataReceived += (_, e) => Take(name, e.Data);
        p.ErrorDataReceived += (_, e) => Take(name + "!", e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return p;
    }

    /// <summary>A coordinator (`train --cluster-port`, the tiny CNN on <paramref name="data"/>) and <paramref name="workers"/> worker processes
    /// started once it listens; returns them and the run folder.</summary>
    public (Process Coordinator, Process[] Workers, string Out) Start(string data, int workers, string trainOptions, string coordinatorExtra = "")
    {
        var spec = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(spec, TestData.TinyCnn);
        var outDir = Directory.CreateTempSubdirectory("disttrain-out-").FullName;
        int port = FreePort();
        using var listening = new ManualResetEventSlim();
        var coord = Run($"train --model \"{spec}\" --dataset \"{data}\" {trainOptions} --seed 5 --workers 0 --cluster-port {port} " +
                        $"--wait-workers {workers} --out \"{outDir}\" {coordinatorExtra}", "coordinator",
            line => { if (line.StartsWith("cluster seed node ", StringComparison.Ordinal)) listening.Set(); });
        Assert.True(listening.Wait(TimeSpan.FromSeconds(60)), "the coordinator did not start listening");
        var ws = Enumerable.Range(0, workers)
            .Select(i => Run($"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port} --threads 1", $"worker{i}")).ToArray();
        return (coord, ws, outDir);
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
