// A parameter-server shard against raw data-plane clients: what happens to a frame that a worker had half sent
// when it left the cluster (its link cut, so its TCP connection never ends by itself).
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistTrain.Nn.Models;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Runtime;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests.Runtime;

public class ParameterServerActorTests : TestKit
{
    [Fact]
    public void AHalfSentChunkOfAWorkerThatLeftIsFreedForTheWorkerThatRedoesIt()
    {
        var coordinator = CreateTestProbe();
        var ps = Sys.ActorOf(ParameterServerActor.Props(coordinator.Ref, "node-ps", NodeEndpoints.Loopback));
        coordinator.ExpectMsg<RequestShard>();
        var job = new TrainJob { ModelSpecJson = TestData.TinyCnn, Dataset = "idx:/unused", BatchSize = 8, MicroBatch = 4, Optimizer = "sgd", Lr = 0.1f, Seed = 1 };
        int n = job.Spec().Build(1).ParameterCount;
        var description = JobMapping.ToDescription(job, "job-ps", n) with { Dataset = new DatasetInfo("idx:/unused", 16, 4, "") };
        ps.Tell(new ShardAssignment(0, 1, 0, n, description));
        var port = coordinator.ExpectMsg<RegisterShard>().DataPort;
        var key = DataPlaneKey.FromWire(description.DataKey);

        var gradient = Enumerable.Range(0, n).Select(i => 1e-3f * (i % 17)).ToArray();
        var poisoned = (float[])gradient.Clone();
        poisoned[n / 2] = float.NaN;
        var header = new FrameHeader(FrameKind.Gradient, 0, 1, 0, 0, 0, n, 0, 0);
        string idA = JobMapping.SenderIdOf("wA").ToString(), idB = JobMapping.SenderIdOf("wB").ToString();
        GradientRejected NextRejection() => coordinator.FishForMessage<GradientRejected>(_ => true, TimeSpan.FromSeconds(10));

        // Worker B: a whole frame of micro-batch 0 that is refused (not finite), so B's receive thread is known to run,
        // then the header of micro-batch 1's gradient and half of its floats, then nothing (its link was cut).
        using var b = DataPlaneClient.Connect("127.0.0.1", port, JobMapping.SenderIdOf("wB"), key, TimeSpan.FromSeconds(10));
        b.Send(header with { MicroBatch = 0 }, poisoned);
        var half = MemoryMarshal.AsBytes(gradient.AsSpan()).Slice(0, 2 * n);
        b.SendRaw(header with { Checksum = DataPlaneClient.Checksum(gradient), SenderId = b.SenderId }, half);
        var first = NextRejection();
        Assert.Equal((idB, 0), (first.WorkerId, first.MicroBatch));

        // Worker A redoes micro-batch 1 while B's frame holds the slot: refused as a duplicate. A probes with a frame that
        // is not finite, which leaves nothing behind if it lands before B's header was read (the receive threads race).
        using var a = DataPlaneClient.Connect("127.0.0.1", port, JobMapping.SenderIdOf("wA"), key, TimeSpan.FromSeconds(10));
        GradientRejected refused;
        int probes = 0;
        do
        {
            Assert.True(++probes <= 100, "B's half frame never held micro-batch 1's slot");
            a.Send(header, poisoned);
            refused = NextRejection();
            Assert.Equal((idA, 0L, 1), (refused.WorkerId, refused.Step, refused.MicroBatch));
            if (refused.Reason != "Duplicate") Thread.Sleep(20);
        } while (refused.Reason != "Duplicate");

        // The coordinator says B left: its connection closes, the half frame is dropped and its slot freed.
        ps.Tell(new WorkerGone("wB"));
        var lost = NextRejection();
        Assert.Equal((idB, 1), (lost.WorkerId, lost.MicroBatch));
        Assert.Contains("ConnectionLost", lost.Reason);
        a.Send(header, gradient);
        var accepted = coordinator.FishForMessage<GradientAccepted>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal((0L, 1, idA), (accepted.Step, accepted.MicroBatch, accepted.WorkerId));
    }
}
