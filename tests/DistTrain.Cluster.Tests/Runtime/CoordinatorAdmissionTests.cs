// The coordinator refuses a worker or shard of another protocol version or model, saying which.
using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Tests.Runtime;

public class CoordinatorAdmissionTests : TestKit
{
    private IActorRef Coordinator(out string specHash)
    {
        var job = new TrainJob { ModelSpecJson = Presets.Json("quadrant"), Dataset = "synthetic:quadrants:n=256", BatchSize = 32, Seed = 3 };
        specHash = job.Spec().Hash;
        var settings = new CoordinatorSettings(1, Directory.CreateTempSubdirectory("disttrain-adm-").FullName, NodeEndpoints.Loopback, TimeSpan.FromMinutes(1));
        return Sys.ActorOf(CoordinatorActor.Props(job, 256, 60, settings));
    }

    [Fact]
    public void WorkerWithAnotherProtocolVersionIsRefusedSayingSo()
    {
        var c = Coordinator(out var hash);
        c.Tell(new RegisterWorker("w1", "addr", "127.0.0.1", 5000, WireProtocol.Version + 1, hash));
        var r = ExpectMsg<RegisterRejected>();
        Assert.Contains($"protocol version {WireProtocol.Version + 1}", r.Reason);
        c.Tell(new RequestJob("w1", WireProtocol.Version + 1));
        Assert.Contains("protocol version", ExpectMsg<RegisterRejected>().Reason);
    }

    [Fact]
    public void WorkerWithAnotherModelIsRefusedSayingSo()
    {
        var c = Coordinator(out var hash);
        var other = ModelSpec.Parse(Presets.Json("mlp")).Hash;
        c.Tell(new RegisterWorker("w2", "addr", "127.0.0.1", 5000, WireProtocol.Version, other));
        var r = ExpectMsg<RegisterRejected>();
        Assert.Contains("model spec hash", r.Reason);
        Assert.Contains(other[..12], r.Reason);
        // The right model is accepted (no rejection; it waits for the shards before the layout is sent).
        c.Tell(new RegisterWorker("w3", "addr", "127.0.0.1", 5000, WireProtocol.Version, hash));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void JobIsHandedOutWithTheSpecAndItsHash()
    {
        var c = Coordinator(out var hash);
        c.Tell(new RequestJob("w4", WireProtocol.Version));
        var job = ExpectMsg<JobDescription>();
        Assert.Equal(hash, job.SpecHash);
        Assert.Equal(hash, ModelSpec.Parse(job.SpecJson).Hash);
        Assert.Equal(256, job.Dataset.TrainSamples);
    }
}
