// Per-peer identity on the data plane: every connection proves the key of its (listener, sender id) pair, which the
// coordinator derives from the job key and hands only to the two ends (JobKeys). A member that holds only its own keys
// cannot complete a handshake as another sender id toward a worker or the coordinator, and a shard's checkpoint frames
// count only for its own range. (Toward a shard: ParameterServerActorTests.)
using System.Net;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using DistTrain.Training;
using DistTrain.Training.Steps;
using Xunit;

namespace DistTrain.Cluster.Tests.Runtime;

public class PairwiseKeyTests
{
    private readonly JobKeys _keys = new(DataPlaneKey.Create());
    private static readonly int ShardA = JobMapping.ShardSenderId("akka.tcp://disttrain@10.0.0.2:4053/ps0", 0);
    private static readonly int ShardB = JobMapping.ShardSenderId("akka.tcp://disttrain@10.0.0.3:4053/ps0", 1);
    private const string Worker = "akka.tcp://disttrain@10.0.0.4:4053/w0", OtherWorker = "akka.tcp://disttrain@10.0.0.5:4053/w0";

    private sealed class Sink : IFrameHandler
    {
        public DropReason? Rent(FrameHeader header, out Span<float> destination)
        {
            destination = default;
            return DropReason.Rejected;
        }

        public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload) { }
    }

    private static DataPlaneClient Connect(int port, int sender, DataPlaneKey key) =>
        DataPlaneClient.Connect("127.0.0.1", port, sender, key, TimeSpan.FromSeconds(10));

    [Fact]
    public void Both_ends_of_a_pair_derive_one_key_and_every_other_pair_has_another()
    {
        // The shard derives its side from its listener key; the worker is handed the same bytes in its layout.
        Assert.Equal(_keys.Listener(ShardA).PeerKey(JobMapping.SenderIdOf(Worker)).ToWire(), _keys.WorkerToShard(Worker, ShardA));
        Assert.Equal(_keys.Listener(JobMapping.SenderIdOf(Worker)).PeerKey(ShardA).ToWire(), _keys.ShardToWorker(ShardA, Worker));
        Assert.Equal(_keys.Listener(JobMapping.CoordinatorSenderId).PeerKey(ShardA).ToWire(), _keys.ShardToCoordinator(ShardA));
        byte[][] all =
        [
            _keys.Job.ToWire(), _keys.Listener(ShardA).ToWire(), _keys.Listener(ShardB).ToWire(), _keys.WorkerListener(Worker),
            _keys.WorkerToShard(Worker, ShardA), _keys.WorkerToShard(Worker, ShardB), _keys.WorkerToShard(OtherWorker, ShardA),
            _keys.ShardToWorker(ShardA, Worker), _keys.ShardToWorker(ShardB, Worker), _keys.ShardToCoordinator(ShardA), _keys.ShardToCoordinator(ShardB),
        ];
        Assert.Equal(all.Length, all.Select(Convert.ToHexString).Distinct().Count());
        // Another job's keys share nothing with this one's.
        Assert.NotEqual(_keys.WorkerToShard(Worker, ShardA), new JobKeys(DataPlaneKey.Create()).WorkerToShard(Worker, ShardA));
    }

    /// <summary>
    /// A worker takes pushes from the shard that owns a range (ParameterInbox's owner check). Shard A, holding its own key toward
    /// the worker, cannot open a connection there as shard B, nor can another worker (holding its keys toward both shards):
    /// each proof fails and is counted; shard B with its own key gets in.
    /// </summary>
    [Fact]
    public void Toward_a_worker_a_member_cannot_be_a_shard_it_is_not()
    {
        using var worker = new DataPlaneServer(IPAddress.Loopback, 0, new Sink(), _keys.Listener(JobMapping.SenderIdOf(Worker)));
        var shardAKey = DataPlaneKey.FromWire(_keys.ShardToWorker(ShardA, Worker));
        using (Connect(worker.Port, ShardA, shardAKey)) { }   // its own id: admitted
        Assert.Throws<IOException>(() => Connect(worker.Port, ShardB, shardAKey));
        Assert.Throws<IOException>(() => Connect(worker.Port, ShardB, DataPlaneKey.FromWire(_keys.WorkerToShard(OtherWorker, ShardB))));
        Assert.Throws<IOException>(() => Connect(worker.Port, ShardB, DataPlaneKey.FromWire(_keys.ShardToWorker(ShardB, OtherWorker))));
        Assert.Equal(3, worker.Stats.Dropped(DropReason.Unauthenticated));
        using (Connect(worker.Port, ShardB, DataPlaneKey.FromWire(_keys.ShardToWorker(ShardB, Worker)))) { }
        Assert.Equal(3, worker.Stats.Dropped(DropReason.Unauthenticated));
    }

    /// <summary>
    /// The coordinator's checkpoint receiver: a worker cannot connect as a shard, and shard B, connected as itself, cannot write
    /// shard A's range of a checkpoint (NotPermitted, counted); A's own frame is the one collected.
    /// </summary>
    [Fact]
    public void Toward_the_coordinator_a_member_cannot_be_a_shard_it_is_not_and_a_shard_writes_only_its_own_range()
    {
        var job = new TrainJob { ModelSpecJson = TestData.TinyCnn, Dataset = "idx:/unused", BatchSize = 8, MicroBatch = 4, Optimizer = "sgd", Lr = 0.1f, Seed = 1 };
        int n = job.Spec().Build(1).ParameterCount;
        var ranges = KeyRanges.Split(n, 2);
        using var collected = new SemaphoreSlim(0);
        using var checkpoints = new CoordinatorCheckpoints(job, ranges, NodeEndpoints.Loopback, _ => collected.Release(), statistics: false);
        checkpoints.UseKeys(_keys);
        checkpoints.ShardAssigned(0, ShardA);
        checkpoints.ShardAssigned(1, ShardB);
        var ask = checkpoints.Begin(7);

        // A worker, with its own keys, tries to be shard A.
        Assert.Throws<IOException>(() => Connect(ask.DataPort, ShardA, DataPlaneKey.FromWire(_keys.WorkerToShard(Worker, ShardA))));
        Assert.Throws<IOException>(() => Connect(ask.DataPort, ShardA, DataPlaneKey.FromWire(_keys.ShardToCoordinator(ShardB))));
        Assert.Equal(2, checkpoints.Stats!.Dropped(DropReason.Unauthenticated));

        float[] Values(KeyRange r, float v) => Enumerable.Repeat(v, r.Length).ToArray();
        FrameHeader Parameters(int shard) => new(FrameKind.Parameters, 7, 0, 7, shard, ranges[shard].Offset, ranges[shard].Length, 0, 0);
        using (var b = Connect(ask.DataPort, ShardB, DataPlaneKey.FromWire(_keys.ShardToCoordinator(ShardB))))
        {
            b.Send(Parameters(0), Values(ranges[0], 666f));   // A's range, forged
            b.Send(Parameters(1), Values(ranges[1], 2f));     // its own
        }
        for (int i = 0; i < 1000 && checkpoints.Stats.Dropped(DropReason.NotPermitted) == 0; i++) Thread.Sleep(10);
        Assert.Equal(1, checkpoints.Stats.Dropped(DropReason.NotPermitted));

        using (var a = Connect(ask.DataPort, ShardA, DataPlaneKey.FromWire(_keys.ShardToCoordinator(ShardA))))
            a.Send(Parameters(0), Values(ranges[0], 1f));
        Assert.True(collected.Wait(TimeSpan.FromSeconds(20)), "the checkpoint was not collected");
        var (values, _) = checkpoints.Collected(7);
        Assert.Equal([.. Values(ranges[0], 1f), .. Values(ranges[1], 2f)], values);
    }
}
