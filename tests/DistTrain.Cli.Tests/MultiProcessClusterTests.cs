// Real processes on 127.0.0.1: a coordinator/PS process (`disttrain train --cluster-port`) and worker
// processes (`disttrain node --roles worker`). The saved weights must be bit-identical to the
// in-process run — with 3 worker processes, and when one worker is killed with SIGKILL mid-run
// (its micro-batches are re-queued; DESIGN contracts 2 and 4).
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Tests.Runtime;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class MultiProcessClusterTests(ITestOutputHelper output) : IDisposable
{
    private readonly List<Process> _processes = [];

    private static string Dll()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DistTrain.sln"))) dir = dir.Parent;
        var dll = Path.Combine(dir!.FullName, "src", "DistTrain.Cli", "bin", "Release", "net10.0", "disttrain.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: build the solution in Release first (scripts/test.sh does).");
        return dll;
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private Process Start(string args, string name)
    {
        var psi = new ProcessStartInfo("dotnet", $"\"{Dll()}\" {args}") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) Log($"[{name}] {e.Data}"); };
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
    };

    private static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private async Task<string> InProcess(TrainJob job)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-ref-").FullName;
        var r = await ClusterNode.RunLocal(job, 1, 1, dir).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(r.Error);
        return Sha(r.ModelPath!);
    }

    /// <summary>Starts the coordinator process and the worker processes; returns the coordinator and the output folder.</summary>
    private (Process Coordinator, Process[] Workers, string Out) StartCluster(TrainJob job, int workers, string extra = "", string? outDir = null)
    {
        var specFile = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(specFile, job.ModelSpecJson);
        outDir ??= Directory.CreateTempSubdirectory("disttrain-mp-").FullName;
        int port = FreePort();
        var coord = Start($"train --model \"{specFile}\" --dataset \"{job.Dataset}\" --epochs {job.Epochs} --batch-size {job.BatchSize} " +
            $"--micro-batch {job.MicroBatch} --optimizer {job.Optimizer} --lr {job.Lr} --seed {job.Seed} --max-steps {job.MaxSteps} " +
            $"--workers 0 --cluster-port {port} --wait-workers {workers} --out \"{outDir}\" {extra}", "coordinator");
        var ws = Enumerable.Range(0, workers)
            .Select(i => Start($"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}", $"worker{i}")).ToArray();
        return (coord, ws, outDir);
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
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !coord.HasExited && (!File.Exists(metrics) || ReadLines(metrics) < 3)) await Task.Delay(100);
        Assert.False(coord.HasExited, "the run ended before a worker could be killed");
        workers[1].Kill();
        Log($"killed worker1 after {ReadLines(metrics)} steps");
        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator process did not finish within 3 minutes after the kill");
        Assert.Equal(0, coord.ExitCode);
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
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
               (DistTrain.Nn.Checkpoints.CheckpointSeries.List(outDir).Count == 0 || ReadLines(metrics) < 7)) await Task.Delay(50);
        Assert.False(coord.HasExited, "the run ended before the coordinator could be killed");
        coord.Kill();
        foreach (var w in workers) w.Kill(); // the cluster is gone; the whole job restarts
        coord.WaitForExit();
        var left = DistTrain.Nn.Checkpoints.CheckpointSeries.List(outDir);
        Log($"killed the coordinator after {ReadLines(metrics)} metric lines; checkpoints: {string.Join(", ", left.Select(c => c.Step))}");
        Assert.False(File.Exists(Path.Combine(outDir, "model.safetensors")));
        Assert.True(left[0].Step < 30);

        var (again, _, _) = StartCluster(job, 2, $"--checkpoint-every 5 --resume \"{outDir}\"", outDir);
        Assert.True(again.WaitForExit(TimeSpan.FromMinutes(3)), "the resumed coordinator did not finish within 3 minutes");
        Assert.Equal(0, again.ExitCode);
        Assert.Equal(expected, Sha(Path.Combine(outDir, "model.safetensors")));
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
