// Strangers on the control plane of a training cluster without TLS (issue 15; local runs and --insecure, where Akka
// remoting authenticates nothing): a coordinator process (holding the parameter-server shard) and a worker process train
// while two ActorSystems in the test complete associations with them — one only associates, one joins the cluster as a
// member without a role — and send, to the coordinator, the shard, the standby and the worker actors, a seeded, bounded
// stream of forged Hyperion payloads (garbage, length bombs claiming 1e9 elements, foreign type names, flipped bits,
// payloads above disttrain.max-message-bytes), serializer ids and manifests nobody wrote, and control messages of ours
// that are out of range, malformed, or well-formed but from a non-member. Must hold: the weights are bit-identical to the
// one-process run, no role is restarted (no process exits early or non-zero, no shard or worker registers twice), every
// kind of refusal is counted, resident memory grows by at most a small multiple of the bytes sent, threads stay bounded,
// and no step takes longer than 2 s.
using System.Diagnostics;
using Akka.Actor;
using DistTrain.Cli.Tests.Support;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;
using Xunit;
using Xunit.Abstractions;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class ControlPlaneStrangerTests(ITestOutputHelper output) : IDisposable
{
    private readonly DisttrainProcesses _procs = new(output);
    private readonly List<ActorSystem> _systems = [];

    private const int CasesPerTarget = 150, Seed = 15, Billion = 1_000_000_000;

    [Fact]
    public async Task Strangers_associated_with_an_insecure_cluster_change_no_bit_restart_no_role_and_are_refused_and_counted()
    {
        // Longer than the port fuzz's run: the strangers go through four role actors one after another, and on a fast host
        // 320 steps ended while they were still at the coordinator (the shard had stopped with the run when they came to it).
        var job = PortFuzzTests.Job() with { Epochs = 15, MaxSteps = 1500 };
        var referenceRun = ClusterNode.RunLocal(job, 1, 1, Directory.CreateTempSubdirectory("disttrain-ref-").FullName);

        var dir = Directory.CreateTempSubdirectory("disttrain-akka-stranger-").FullName;
        var spec = Path.Combine(dir, "tiny.json");
        File.WriteAllText(spec, job.ModelSpecJson);
        var outDir = Path.Combine(dir, "out");
        int port = PortFuzzTests.FreePort();
        var coord = _procs.Start(PortFuzzTests.TrainArgs(job, spec) + $" --workers 0 --ps-shards 1 --ps-local 1 --wait-workers 1 --cluster-port {port} --config local --insecure --out \"{outDir}\"", "coordinator");
        await _procs.WaitForLine(coord, l => l.StartsWith("cluster seed node ", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
        string seed = $"akka.tcp://disttrain@127.0.0.1:{port}";
        var worker = _procs.Start($"node --roles worker --config local --insecure --seed-nodes {seed}", "worker");
        var all = new[] { (Name: "coordinator", P: coord), (Name: "worker", P: worker) };

        var metrics = Path.Combine(outDir, "metrics.jsonl");
        var clock = Stopwatch.StartNew();
        while (PortFuzzTests.StepLines(metrics).Count < 12 && !coord.HasExited && clock.Elapsed < TimeSpan.FromSeconds(90)) await Task.Delay(50);
        Assert.False(coord.HasExited, "the run ended before the strangers came");
        int fromStep = PortFuzzTests.StepLines(metrics).Count;
        var joined = _procs.Lines(coord).First(l => l.Contains("/w0 joined ("));
        string workerNode = joined[joined.IndexOf("akka.tcp://", StringComparison.Ordinal)..joined.IndexOf("/w0 joined", StringComparison.Ordinal)];

        // The strangers: one that only associates (remote provider), one that joins as a member with no role.
        var outsider = Stranger(member: false, seed);
        var member = Stranger(member: true, seed);
        var up = new TaskCompletionSource();
        Akka.Cluster.Cluster.Get(member).RegisterOnMemberUp(() => up.TrySetResult());
        await up.Task.WaitAsync(TimeSpan.FromSeconds(60));

        var peaks = ResourcePeaks.Start(all.Select(a => a.P).ToArray());

        // Every role actor of both processes, reached by each stranger over its own association.
        string[] paths = [$"{seed}/user/coordinator/singleton", $"{seed}/user/ps0", $"{seed}/user/standby", $"{workerNode}/user/worker0"];
        var sent = new long[all.Length];
        var rng = new Random(Seed);
        foreach (var (system, isMember) in new[] { (outsider, false), (member, true) })
            foreach (var path in paths)
            {
                var target = await Resolve(system, path);
                int process = path.StartsWith(seed, StringComparison.Ordinal) ? 0 : 1;
                for (int c = 0; c < CasesPerTarget; c++)
                {
                    var message = Case(rng, isMember);
                    sent[process] += message switch
                    {
                        ForgedPayload f => f.Bytes.Length, ForgedSerializerId f => f.Bytes.Length, ForgedManifest f => f.Bytes.Length,
                        _ => ControlPlaneStranger.Serialize(message).Length,
                    };
                    // No sender (it arrives as the target's own dead letters), or one of the stranger's own actors.
                    target.Tell(message, c % 2 == 0 ? ActorRefs.NoSender : system.DeadLetters);
                    if (c % 25 == 24) await Task.Delay(20); // let remoting drain; the stream stays well below the link's rate
                }
            }
        // Everything sent arrived (a message after them all is answered), and nothing stopped a role.
        foreach (var system in new[] { outsider, member })
            foreach (var path in paths)
                await Resolve(system, path);
        foreach (var (name, p) in all) Assert.False(p.HasExited, $"the {name} process ended while strangers sent to it");
        await Task.Delay(1000);
        await peaks.Stop();
        await Akka.Cluster.Cluster.Get(member).LeaveAsync().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        Assert.True(worker.WaitForExit(TimeSpan.FromSeconds(60)), "the worker did not end with the run");
        worker.WaitForExit();
        Assert.Equal(0, worker.ExitCode);
        var reference = await referenceRun.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(reference.Error);
        Assert.Equal(PortFuzzTests.Sha(reference.ModelPath!), PortFuzzTests.Sha(Path.Combine(outDir, "model.safetensors")));

        // No role restarted: a restarted shard would register its range again, a restarted worker would join again.
        var coordLines = _procs.Lines(coord);
        var workerLines = _procs.Lines(worker);
        Assert.Single(coordLines, l => l.Contains(" of 1 holds ["));
        Assert.DoesNotContain(coordLines, l => l.Contains("(2 in all)"));
        foreach (var lines in new[] { coordLines, workerLines })
            Assert.DoesNotContain(lines, l => l.Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase) || l.Contains("restart", StringComparison.OrdinalIgnoreCase));

        // Refused and counted, each reason on the process that met it.
        string[] all3 = [.. coordLines, .. workerLines];
        Assert.Contains(all3, l => l.Contains("undecodable control payload"));
        Assert.Contains(coordLines, l => l.Contains("refused a control message (not_member"));
        Assert.Contains(workerLines, l => l.Contains("refused a control message (not_member"));
        Assert.Contains(coordLines, l => l.Contains("refused a control message (malformed"));
        Assert.Contains(workerLines, l => l.Contains("refused a control message (malformed"));

        for (int i = 0; i < all.Length; i++) peaks.AssertBounded(i, all[i].Name, sent[i], 16, _procs.Log);
        var slow = PortFuzzTests.StepLines(metrics).Skip(fromStep).Where(s => s.Seconds > 2).ToList();
        Assert.True(slow.Count == 0, "steps longer than 2 s while strangers sent: " + string.Join(", ", slow.Select(s => $"{s.Step} ({s.Seconds:0.00} s)")));
    }

    private static async Task<IActorRef> Resolve(ActorSystem system, string path)
    {
        try { return await system.ActorSelection(path).ResolveOne(TimeSpan.FromSeconds(30)); }
        catch (ActorNotFoundException) { throw new Xunit.Sdk.XunitException($"{path} is gone: a stranger's message stopped that role"); }
    }

    private ActorSystem Stranger(bool member, string seed)
    {
        var overrides = new ClusterOverrides
        {
            Port = PortFuzzTests.FreePort(), SeedNodes = member ? [seed] : null, Roles = [],
            Hocon = (member ? "" : "akka.actor.provider = remote\n") + ControlPlaneStranger.Hocon(member),
        };
        var system = ActorSystem.Create("disttrain", ClusterConfig.Load("local", overrides));
        _systems.Add(system);
        return system;
    }

    /// <summary>One seeded case. Every stranger sends forged payloads and malformed messages; a non-member also sends
    /// well-formed ones (refused for where they come from).</summary>
    private static object Case(Random rng, bool member)
    {
        byte[] Garbage(int min, int max) { var b = new byte[rng.Next(min, max)]; rng.NextBytes(b); return b; }
        byte[] Flipped(object m)
        {
            var b = ControlPlaneStranger.Serialize(m);
            for (int f = rng.Next(1, 4); f > 0; f--) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
            return b;
        }
        var marker = new uint[] { 0xA1B2C3D4, 0xA1B2C3D4, 0xA1B2C3D4 };
        var key = Enumerable.Repeat((byte)0xEE, 32).ToArray();
        int kind = rng.Next(member ? 14 : 20);
        return kind switch
        {
            0 => new ForgedPayload(Garbage(1, 4096)),
            // Length bombs: an array of 1e9 uints, a string of 1e9 chars, a byte[] of 1e9 bytes, a type name of 1e9 bytes.
            1 => new ForgedPayload(ControlPlaneStranger.LengthBomb(new NormShare(0, 5, marker), [0xD4, 0xC3, 0xB2, 0xA1], Billion)),
            2 => new ForgedPayload(ControlPlaneStranger.LengthBomb(new RequestWork(new string('q', 300), 0), "qqqq"u8.ToArray(), Billion)),
            3 => new ForgedPayload(ControlPlaneStranger.LengthBomb(new StandbyState("job", key, "127.0.0.1", 1, false), [0xEE, 0xEE, 0xEE, 0xEE], Billion)),
            4 => new ForgedPayload(ControlPlaneStranger.TypeManifest("DistTrain.Cluster.Messages.CoordinatorMessages+RequestWork, DistTrain.Cluster", claimedLength: Billion)),
            // Type names that are not ours, and one of ours where the message declares another.
            5 => new ForgedPayload(ControlPlaneStranger.TypeManifest(rng.Next(2) == 0
                ? "System.Diagnostics.Process, System.Diagnostics.Process" : "System.IO.FileInfo, System.Private.CoreLib")),
            6 => new ForgedPayload(Flipped(new RegisterShard(0, 0, 100, "akka.tcp://x@127.0.0.1:1", "127.0.0.1", 1, 1))),
            7 => new ForgedPayload(Garbage(121_000, 122_000)), // above disttrain.max-message-bytes, below the remoting frame
            8 => new ForgedSerializerId(Garbage(1, 512)),
            // Malformed messages of ours (refused by every gate, members' too).
            9 => new RegisterShard(rng.Next(1, 1000), 0, 10, "akka.tcp://x@127.0.0.1:1", "127.0.0.1", 1, 1), // shard index out of range
            10 => new NormShare(0, 5, new uint[2000]),
            11 => new SendCheckpoint("127.0.0.1", 70_000, 0),
            12 => new TrainingDone(-1, 0, "stranger"),
            13 => new WorkAssignment(0, 3, 9, 4, 3),
            // Well-formed messages a member could send (refused as from a non-member).
            14 => new ForgedManifest(Garbage(1, 256), "Nonsense"),
            15 => new RegisterShard(0, 0, 10, "akka.tcp://x@127.0.0.1:1", "127.0.0.1", 1, 1),
            16 => new TrainingDone(5, 5, "stranger"),
            17 => new SendCheckpoint("127.0.0.1", 9, 0),
            18 => new RollBack(0),
            _ => new WorkerGone("akka.tcp://x@127.0.0.1:1/w0"),
        };
    }

    public void Dispose()
    {
        foreach (var s in _systems) s.Terminate().Wait(TimeSpan.FromSeconds(20));
        _procs.Dispose();
    }
}
