// One filled-in instance of every control message, used by the round-trip tests; a test checks the
// list covers every type on the serializer's allow-list, so a new message cannot skip its round trip.
using DistTrain.Cluster.Messages;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;

namespace DistTrain.Cluster.Tests;

public static class MessageSamples
{
    private static readonly ShardInfo Shard0 = new(0, 0, 600_000, "akka.tcp://disttrain@127.0.0.1:4053", "127.0.0.1", 40001);
    private static readonly ShardInfo Shard1 = new(1, 600_000, 222_410, "akka.tcp://disttrain@10.0.0.2:4053", "10.0.0.2", 40002);
    private static readonly ShardLayout Layout = new(822_410, [Shard0, Shard1]);
    /// <summary>A 32-byte data-plane key with recognisable bytes.</summary>
    public static byte[] Key(int seed) => Enumerable.Range(0, 32).Select(i => (byte)(7 * i + seed)).ToArray();
    // A worker's layout carries its key toward each shard.
    private static readonly ShardLayout WorkerLayout = new(822_410, [Shard0 with { Key = Key(2) }, Shard1 with { Key = Key(3) }]);
    private static readonly OptimizerSpec Adam = new("adam", 1e-3f, 0f, 0.9f, 0.999f, 1e-8f, 0.01f);
    private static readonly Hyperparameters Hyper = new(Adam, "cosine", 100, 256, 32, 42, 10, TrainingMode.Async, 2, 4, 5000, "crop:2,flip", 1.5f)
    {
        OuterOptimizer = "nesterov", OuterLr = 0.7f, OuterMomentum = 0.9f, // local-sgd's outer optimizer travels with the job
    };
    private static readonly DatasetInfo Data = new("idx:/data/fashion-mnist", 60000, 10000, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");

    public static IDistTrainMessage[] All() =>
    [
        new RequestJob("worker-1", WireProtocol.Version),
        new RegisterWorker("worker-1", "akka.tcp://disttrain@127.0.0.1:4054", "127.0.0.1", 40010, WireProtocol.Version, "sha256:ab12"),
        new RegisterRejected("worker-1", "spec hash sha256:ab12 differs from the job's sha256:cd34; rebuild the worker from the same version"),
        new RegisterAccepted("worker-1", WorkerLayout, 17),
        Data,
        Adam,
        Hyper,
        new JobDescription("job-7", """{"preset":"cnn","layers":[{"type":"conv2d","out":32}]}""", "sha256:ab12", 822_410, Data, Hyper)
            { DataKey = Key(1) },
        new RequestWork("worker-1", 16),
        new WorkAssignment(2, 470, 5, 8, 469),
        new TrainingDone(4690, 4690, null),
        new TrainingDone(100, 99, "stopped: NaN gradient in step 100"),
        new MicroBatchDone("worker-1", 470, 5, 0.3141592653589793, 32, 29, 12.5, 1.25, 0.5, 3_289_640),
        Shard0,
        Layout,
        new RegisterShard(1, 600_000, 222_410, "akka.tcp://disttrain@10.0.0.2:4053", "10.0.0.2", 40002, WireProtocol.Version),
        new VersionPublished(1, 470, 470),
        new GradientAccepted(0, "worker-1", 470, 5),
        new NormShare(1, 470, [1u, 0u, 4294967295u, 7u]),
        new ApplyClipped(470, 12.75),
        new AsyncApplied(1, 470, 5, 1883, 3),
        new GradientRejected(0, "worker-1", 470, 5, "duplicate (step 470, micro-batch 5)"),
        new PeerConnectionLost(1, 123456789),
        new GradientMismatch(1, 123456789, -987654321, 470, 5, 600_000),
        new RuntimeMessages.LeaseMoved(470, 5, "worker-1"),
        new RuntimeMessages.RequestShard("node-ps-1", WireProtocol.Version),
        new RuntimeMessages.ShardStandby("every key range has an owner"),
        new RuntimeMessages.RejoinShard("job1", 1, 100, 50, "akka.tcp://disttrain@10.0.0.2:4053/ps0", "10.0.0.2", 4061, 19, [0, 10, 19], 5),
        new RuntimeMessages.RollBack(10),
        new RuntimeMessages.StandbyState("job1", Key(4), "10.0.0.1", 4060, false),
        new RuntimeMessages.ShardAssignment(1, 2, 600_000, 222_410,
            new JobDescription("job-7", "{}", "sha256:ab12", 822_410, Data, Hyper) { DataKey = Key(5) }) { CoordinatorKey = Key(6) },
        new RuntimeMessages.WorkerEndpoint("worker-1", 5, "127.0.0.1", 40010) { Key = Key(7) },
        new RuntimeMessages.WorkerGone("worker-1"),
        new RuntimeMessages.SendCheckpoint("127.0.0.1", 40012, 120),
        new RuntimeMessages.ShardRestored(1, 120),
        new RuntimeMessages.RunCompleted(4690, "/runs/x/model.safetensors", 0.91, 0.25, null),
        new SweepMessages.RunnerReady("akka.tcp://disttrain@10.0.0.2:4053", WireProtocol.Version),
        new SweepMessages.TrialRequest(3, 2, 1, ["--model", "mlp", "--lr", "0.001", "--max-steps", "100"], 1L << 30, WireProtocol.Version,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        new SweepMessages.TrialRefused(3, "'--out' is not a train option a trial may set"),
        new SweepMessages.TrialLog(3, ["epoch 1/1", "test accuracy 0.91"]),
        new SweepMessages.TrialFile(3, "checkpoint/step-100/model.safetensors", 65536, 200000, [1, 2, 3, 255]),
        new SweepMessages.TrialFinished(3, 0, "", 12.5, 4, 200123),
        new SweepMessages.SweepFinished("the sweep is over"),
    ];
}
