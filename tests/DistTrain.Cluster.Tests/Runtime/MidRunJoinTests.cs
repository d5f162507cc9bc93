// A worker on another node that joins a running job gets its data-plane keys from the coordinator (its listener key in
// its job description, its keys toward the shards in its layout, the shards' keys toward it in their notice of it) and
// trains: two ActorSystems in this process, real remoting between them, real sockets for the data plane. The late node
// cannot ask for the keys of the first node's worker: the coordinator's gate refuses an id of another node.
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Akka.Actor;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Telemetry;
using DistTrain.Data.Sources;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class MidRunJoinTests
{
    private static int FreePort() => InProcessDeterminismTests.FreePortRange(1);

    [Fact]
    public async Task AWorkerOfAnotherNodeThatJoinsMidRunGetsItsKeysAndTrainsAndCannotClaimAnotherNodesWorker()
    {
        var job = new TrainJob
        {
            ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson, Dataset = TestData.WriteIdx(384, 50),
            Epochs = 40, BatchSize = 32, MicroBatch = 8, Optimizer = "sgd", Lr = 1e-2f, Seed = 5, MaxSteps = 360,
        };
        var (train, _) = DatasetSpec.Parse(job.Dataset).Load();
        var trainer = job.CreateTrainer(train.Count);
        trainer.Fit(train);
        var reference = trainer.Model.Store.Values.ToArray();

        var done = new ConcurrentDictionary<string, long>();   // micro-batches each worker finished (the coordinator's meter)
        using var meter = new MeterListener();
        meter.InstrumentPublished = (i, l) => { if (i.Meter.Name == RunMeters.MeterName && i.Name == "worker_micro_batches") l.EnableMeasurementEvents(i); };
        meter.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var t in tags) if (t.Key == "worker" && t.Value is string w) done.AddOrUpdate(w, value, (_, v) => v + value);
        });
        meter.Start();

        int seedPort = FreePort();
        var dir = Directory.CreateTempSubdirectory("disttrain-join-").FullName;
        await using var first = ClusterNode.Start(new NodeOptions
        {
            Overrides = new ClusterOverrides { Port = seedPort }, Job = job, Workers = 1, PsActors = 1, PsShards = 1, MinWorkers = 1, OutDir = dir,
            SerializeMessages = true,
        });
        string firstWorker = $"{Akka.Cluster.Cluster.Get(first.System).SelfAddress}/w0";
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (done.GetValueOrDefault(firstWorker) < 8 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.True(done.GetValueOrDefault(firstWorker) >= 8, "the first worker did not start training");

        await using var late = ClusterNode.Start(new NodeOptions
        {
            Roles = ["worker"], Workers = 1, SerializeMessages = true,
            Overrides = new ClusterOverrides { Port = FreePort(), SeedNodes = [$"akka.tcp://disttrain@127.0.0.1:{seedPort}"] },
        });
        await late.WaitUntilUp();
        string lateWorker = $"{Akka.Cluster.Cluster.Get(late.System).SelfAddress}/w0";

        // The late node asks for the job as the first node's worker (whose listener key it would get): refused, not answered.
        long refused = ControlRefusals.Of(RefusalReason.NotOwnId);
        var coordinator = late.System.ActorSelection($"akka.tcp://disttrain@127.0.0.1:{seedPort}/user/coordinator/singleton");
        await Assert.ThrowsAsync<AskTimeoutException>(() => coordinator.Ask<JobDescription>(new RequestJob(firstWorker, WireProtocol.Version), TimeSpan.FromSeconds(2)));
        Assert.Equal(refused + 1, ControlRefusals.Of(RefusalReason.NotOwnId));
        // Its own worker id is answered, with a listener key of its own (not the first worker's).
        var mine = await coordinator.Ask<JobDescription>(new RequestJob(lateWorker, WireProtocol.Version), TimeSpan.FromSeconds(10));
        Assert.Equal(32, mine.DataKey.Length);

        var result = await first.Completion.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(result.Error);
        Assert.True(done.GetValueOrDefault(lateWorker) > 0, $"the late worker computed nothing (the run had {result.Steps} steps; micro-batches: " +
            string.Join(", ", done.Select(d => $"{d.Key} {d.Value}")) + ")");
        var model = job.Spec().Build(0);
        Checkpoint.LoadInto(model.Store, result.ModelPath!);
        Assert.Equal(reference, model.Store.Values);
    }
}
