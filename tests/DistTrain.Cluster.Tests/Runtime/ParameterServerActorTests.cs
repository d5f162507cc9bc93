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
    /// <summary>The keys a coordinator would derive for this test's job; the shard "node-ps" owns range 0.</summary>
    private readonly JobKeys _keys = new(DataPlaneKey.Create());
    private static readonly int ShardId = JobMapping.ShardSenderId("node-ps", 0);

    /// <summary>Shard 0 of one, as the coordinator assigns it: the job with the shard's listener key, and its key toward the coordinator.</summary>
    private ShardAssignment Assignment(JobDescription description, int n) =>
        new(0, 1, 0, n, description with { DataKey = _keys.Listener(ShardId).ToWire() }) { CoordinatorKey = _keys.ShardToCoordinator(ShardId) };

    /// <summary>The shard "node-ps", assigned the whole of a tiny CNN's vector; its listener's port and initial weights.</summary>
    private (Akka.TestKit.TestProbe Coordinator, IActorRef Ps, int Port, float[] Initial) StartShard()
    {
        var coordinator = CreateTestProbe();
        var ps = Sys.ActorOf(ParameterServerActor.Props(coordinator.Ref, "node-ps", NodeEndpoints.Loopback));
        coordinator.ExpectMsg<RequestShard>();
        var job = new TrainJob { ModelSpecJson = TestData.TinyCnn, Dataset = "idx:/unused", BatchSize = 8, MicroBatch = 4, Optimizer = "sgd", Lr = 0.1f, Seed = 1 };
        var initial = job.Spec().Build(1).Store.Values.ToArray();
        ps.Tell(Assignment(JobMapping.ToDescription(job, "job-ps", initial.Length) with { Dataset = new DatasetInfo("idx:/unused", 16, 4, "") }, initial.Length));
        return (coordinator, ps, coordinator.ExpectMsg<RegisterShard>().DataPort, initial);
    }

    /// <summary>A worker's key toward the shard, as its layout carries it.</summary>
    private DataPlaneKey WorkerKey(string worker) => DataPlaneKey.FromWire(_keys.WorkerToShard(worker, ShardId));

    /// <summary>The coordinator tells the shard where <paramref name="worker"/> listens, with the shard's key toward it; the listener
    /// there has <paramref name="listenerId"/>'s listener key.</summary>
    private WorkerEndpoint Endpoint(string worker, int port, int? listenerId = null) =>
        new(worker, JobMapping.SenderIdOf(worker), "127.0.0.1", port) { Key = _keys.Peer(listenerId ?? JobMapping.SenderIdOf(worker), ShardId).ToWire() };

    [Fact]
    public void AHalfSentChunkOfAStalledWorkerDoesNotHoldUpTheWorkerThatRedoesIt()
    {
        var coordinator = CreateTestProbe();
        var ps = Sys.ActorOf(ParameterServerActor.Props(coordinator.Ref, "node-ps", NodeEndpoints.Loopback));
        coordinator.ExpectMsg<RequestShard>();
        var job = new TrainJob { ModelSpecJson = TestData.TinyCnn, Dataset = "idx:/unused", BatchSize = 8, MicroBatch = 4, Optimizer = "sgd", Lr = 0.1f, Seed = 1 };
        int n = job.Spec().Build(1).ParameterCount;
        var description = JobMapping.ToDescription(job, "job-ps", n) with { Dataset = new DatasetInfo("idx:/unused", 16, 4, "") };
        ps.Tell(Assignment(description, n));
        var port = coordinator.ExpectMsg<RegisterShard>().DataPort;
        // The coordinator registers both workers with the shard: it pushes to them, and takes their gradients from then on.
        // One sink stands for both workers' listeners (one listener key, 1).
        var sink = new PushSink();
        using var pushes = new DataPlaneServer(System.Net.IPAddress.Loopback, 0, sink, _keys.Listener(1));
        foreach (var w in new[] { "wA", "wB" }) ps.Tell(Endpoint(w, pushes.Port, listenerId: 1));
        // The shard connects its pushes after it registered the worker: two connections, both registered.
        for (int i = 0; i < 500 && Volatile.Read(ref sink.Connected) < 2; i++) Thread.Sleep(10);
        Assert.Equal(2, Volatile.Read(ref sink.Connected));

        var gradient = Enumerable.Range(0, n).Select(i => 1e-3f * (i % 17)).ToArray();
        var poisoned = (float[])gradient.Clone();
        poisoned[n / 2] = float.NaN;
        var header = new FrameHeader(FrameKind.Gradient, 0, 1, 0, 0, 0, n, 0, 0);
        string idA = JobMapping.SenderIdOf("wA").ToString(), idB = JobMapping.SenderIdOf("wB").ToString();
        GradientRejected NextRejection() => coordinator.FishForMessage<GradientRejected>(_ => true, TimeSpan.FromSeconds(10));

        // Worker B: a whole frame of micro-batch 0 that is refused (not finite), so B's receive thread is known to run,
        // then the header of micro-batch 1's gradient and half of its floats, then nothing (its link was cut).
        using var b = DataPlaneClient.Connect("127.0.0.1", port, JobMapping.SenderIdOf("wB"), WorkerKey("wB"), TimeSpan.FromSeconds(10));
        b.Send(header with { MicroBatch = 0 }, poisoned);
        var half = MemoryMarshal.AsBytes(gradient.AsSpan()).Slice(0, 2 * n);
        b.SendRaw(header with { Checksum = DataPlaneClient.Checksum(gradient), SenderId = b.SenderId }, half);
        var first = NextRejection();
        Assert.Equal((idB, 0), (first.WorkerId, first.MicroBatch));

        // Worker A redoes micro-batch 1 while B's frame is half-sent (or not yet read): A's copy is received beside it and
        // counts as soon as it is whole; B's half frame no longer holds the micro-batch.
        using var a = DataPlaneClient.Connect("127.0.0.1", port, JobMapping.SenderIdOf("wA"), WorkerKey("wA"), TimeSpan.FromSeconds(10));
        a.Send(header, gradient);
        var accepted = coordinator.FishForMessage<GradientAccepted>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal((0L, 1, idA), (accepted.Step, accepted.MicroBatch, accepted.WorkerId));

        // The coordinator says B left: its connection closes and its half frame ends; the step completes with A's copies.
        ps.Tell(new WorkerGone("wB"));
        a.Send(header with { MicroBatch = 0 }, gradient);
        var second = coordinator.FishForMessage<GradientAccepted>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal((0L, 0, idA), (second.Step, second.MicroBatch, second.WorkerId));
        var published = coordinator.FishForMessage<VersionPublished>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal(1, published.Version);
    }

    /// <summary>A worker's listener that drains the shard's pushes and counts the shard's connections.</summary>
    private sealed class PushSink : IFrameHandler
    {
        public int Connected;

        public DropReason? Rent(FrameHeader header, out Span<float> destination)
        {
            destination = default;
            return DropReason.Rejected;
        }

        public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload) { }

        public void OnPeerConnected(int senderId) => Interlocked.Increment(ref Connected);
    }

    /// <summary>Takes the shard's parameter pushes (a worker's view of the weights) and keeps the newest.</summary>
    private sealed class WeightsSeen(int n) : IFrameHandler
    {
        private readonly float[] _staging = new float[n];
        public readonly System.Collections.Concurrent.BlockingCollection<(long Version, float[] Values)> Pushes = [];

        public DropReason? Rent(FrameHeader header, out Span<float> destination)
        {
            destination = _staging;
            return header.Kind == FrameKind.Parameters && header.Offset == 0 && header.Length == n ? null : DropReason.Rejected;
        }

        public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload) => Pushes.Add((header.Version, payload.ToArray()));

        public (long Version, float[] Values) Next()
        {
            Assert.True(Pushes.TryTake(out var push, TimeSpan.FromSeconds(20)), "no parameter push arrived");
            return push;
        }
    }

    /// <summary>
    /// The attack of issue 15: before step 0 a shard takes restore frames (the coordinator's resume) and once held them
    /// from anyone. A stranger without the coordinator's key toward the shard — through our client, or by hand with a made-up proof followed by the
    /// restore frame — cannot get it applied: the shard's weights stay its initial ones and it reports no restore. The same
    /// frame from the coordinator, which holds that key, is applied (so the refusal is the key's doing, not the frame's).
    /// </summary>
    [Fact]
    public void AStrangerWithoutTheJobKeyCannotReplaceAShardsInitialWeights()
    {
        var (coordinator, ps, port, initial) = StartShard();
        int n = initial.Length;

        var forged = Enumerable.Repeat(7f, n).ToArray();
        var restore = new FrameHeader(FrameKind.Parameters, 5, 0, 5, 0, 0, n, DataPlaneClient.Checksum(forged), 99);
        var stranger = DataPlaneKey.Create();
        Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", port, 99, stranger, TimeSpan.FromSeconds(10)));
        using (var raw = RawDataPlanePeer.Connect(port))
        {
            byte[] attack = [.. raw.HelloBytes(99, stranger),
                .. RawDataPlanePeer.WithTag(RawDataPlanePeer.Frame(restore), new byte[FrameMac.TagBytes], MemoryMarshal.AsBytes(forged.AsSpan()))];
            try { raw.Send(attack); } catch (System.Net.Sockets.SocketException) { /* closed first */ }
            raw.AssertClosedByServer();
        }
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // no ShardRestored

        // A worker's view of the shard: its push on registration carries the initial weights, bit for bit.
        var seen = new WeightsSeen(n);
        using var worker = new DataPlaneServer(System.Net.IPAddress.Loopback, 0, seen, _keys.Listener(JobMapping.SenderIdOf("wA")));
        ps.Tell(Endpoint("wA", worker.Port));
        var (version, values) = seen.Next();
        Assert.Equal(0L, version);
        Assert.True(MemoryMarshal.AsBytes(values.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(initial.AsSpan())), "the shard's weights changed");

        // The control: the coordinator, holding its key toward the shard, sends the same frame and the shard takes it.
        using (var legit = DataPlaneClient.Connect("127.0.0.1", port, JobMapping.CoordinatorSenderId,
                   _keys.Peer(ShardId, JobMapping.CoordinatorSenderId), TimeSpan.FromSeconds(10)))
            legit.Send(restore, forged);
        Assert.Equal(5L, coordinator.FishForMessage<ShardRestored>(_ => true, TimeSpan.FromSeconds(20)).Version);
        (version, values) = seen.Next();
        Assert.Equal(5L, version);
        Assert.Equal(forged, values);
    }

    /// <summary>
    /// A worker holds its own key toward the shard and nothing more: it cannot open a connection there as the coordinator (to
    /// restore the shard's weights) nor as another registered worker, by our client or by hand with a restore frame after the
    /// Hello. As itself it gets in.
    /// </summary>
    [Fact]
    public void AWorkerCannotBeTheCoordinatorOrAnotherWorkerTowardAShard()
    {
        var (coordinator, ps, port, initial) = StartShard();
        int n = initial.Length;
        var seen = new WeightsSeen(n);
        using var listener = new DataPlaneServer(System.Net.IPAddress.Loopback, 0, seen, _keys.Listener(1));
        foreach (var w in new[] { "wA", "wB" }) ps.Tell(Endpoint(w, listener.Port, listenerId: 1));
        Assert.Equal(0L, seen.Next().Version);
        Assert.Equal(0L, seen.Next().Version);

        var mine = WorkerKey("wA");
        int asCoordinator = JobMapping.CoordinatorSenderId, asB = JobMapping.SenderIdOf("wB");
        Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", port, asCoordinator, mine, TimeSpan.FromSeconds(10)));
        Assert.Throws<IOException>(() => DataPlaneClient.Connect("127.0.0.1", port, asB, mine, TimeSpan.FromSeconds(10)));
        var forged = Enumerable.Repeat(7f, n).ToArray();
        var restore = new FrameHeader(FrameKind.Parameters, 5, 0, 5, 0, 0, n, DataPlaneClient.Checksum(forged), asCoordinator);
        using (var raw = RawDataPlanePeer.Connect(port))
        {
            byte[] attack = [.. raw.HelloWithPeerKey(asCoordinator, mine),
                .. RawDataPlanePeer.WithTag(RawDataPlanePeer.Frame(restore), new byte[FrameMac.TagBytes], MemoryMarshal.AsBytes(forged.AsSpan()))];
            try { raw.Send(attack); } catch (System.Net.Sockets.SocketException) { /* closed first */ }
            raw.AssertClosedByServer();
        }
        Assert.DoesNotContain(coordinator.ReceiveWhile(TimeSpan.FromMilliseconds(300), m => m), m => m is ShardRestored);
        using (DataPlaneClient.Connect("127.0.0.1", port, JobMapping.SenderIdOf("wA"), mine, TimeSpan.FromSeconds(10))) { }

        // The shard's weights are its initial ones: a worker registering now gets them, bit for bit.
        ps.Tell(Endpoint("wC", listener.Port, listenerId: 1));
        var (version, values) = seen.Next();
        Assert.Equal(0L, version);
        Assert.True(MemoryMarshal.AsBytes(values.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(initial.AsSpan())), "the shard's weights changed");
    }
}
