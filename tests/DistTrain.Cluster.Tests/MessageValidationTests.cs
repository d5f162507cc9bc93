// MessageValidation: every message the runtime sends is well-formed, and each kind of malformed message (a shard index
// out of range, a negative step or version, a null field, a range beyond the parameters, a port out of range, a
// non-finite hyper-parameter) is refused naming the field and the value.
using DistTrain.Cluster.Messages;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests;

public sealed class MessageValidationTests
{
    // The samples' run: two shards over 822,410 parameters.
    private static readonly MessageBounds Run = new(2, 822_410);
    private static readonly JobDescription Job = MessageSamples.All().OfType<JobDescription>().First();
    private static readonly MicroBatchDone Done = MessageSamples.All().OfType<MicroBatchDone>().First();
    private static readonly Hyperparameters Hyper = Job.Hyper;

    [Fact]
    public void Every_sample_message_is_well_formed_with_and_without_the_runs_bounds()
    {
        foreach (var m in MessageSamples.All())
        {
            Assert.Null(MessageValidation.Problem(m, Run));
            Assert.Null(MessageValidation.Problem(m));
        }
        // The sentinels the runtime sends before step 0: a shard's initial version, a worker with no weights yet.
        Assert.Null(MessageValidation.Problem(new VersionPublished(0, 0, -1), Run));
        Assert.Null(MessageValidation.Problem(new RequestWork("w", -1), Run));
        Assert.Null(MessageValidation.Problem(Job.Hyper.Optimizer with { WeightDecay = float.NaN }, Run)); // NaN: the optimizer's default
        Assert.Null(MessageValidation.Problem(new ShardLayout(10, [null!, new ShardInfo(1, 5, 5, "a", "h", 1)]), Run)); // a range without an owner yet
    }

    public static TheoryData<string, object, string> Malformed() => new()
    {
        { "shard out of range", new VersionPublished(2, 5, 4), "VersionPublished: Shard is 2, outside [0, 2) (the run has 2 shards)" },
        { "negative shard", new GradientAccepted(-1, "w", 3, 0), "GradientAccepted: Shard is -1, outside [0, 2)" },
        { "negative step", Done with { Step = -1 }, "MicroBatchDone: Step is -1, below 0" },
        { "negative micro-batch", Done with { MicroBatch = -4 }, "MicroBatchDone: MicroBatch is -4, below 0" },
        { "more correct than samples", Done with { Correct = 33 }, "MicroBatchDone: Correct is 33, outside [0, 33)" },
        { "negative time", Done with { WaitMs = -1 }, "MicroBatchDone: WaitMs is -1" },
        { "negative version", new SendCheckpoint("127.0.0.1", 40012, -3), "SendCheckpoint: Version is -3, below 0" },
        { "step before the initial version", new VersionPublished(0, 0, -2), "VersionPublished: Step is -2, below -1" },
        { "null id", new RegisterWorker(null!, "addr", "127.0.0.1", 40010, WireProtocol.Version, "h"), "RegisterWorker: WorkerId is null" },
        { "null host", new WorkerEndpoint("w", 5, null!, 40010), "WorkerEndpoint: DataHost is null" },
        { "null nested record", Job with { Hyper = null! }, "JobDescription: JobDescription.Hyper is null" },
        { "null key", Job with { DataKey = null! }, "JobDescription: JobDescription.DataKey is null" },
        { "null shard list", new ShardLayout(10, null!), "ShardLayout: ShardLayout.Shards is null" },
        { "null digits", new NormShare(0, 3, null!), "NormShare: Digits is null" },
        { "digits beyond any square sum", new NormShare(0, 3, new uint[2000]), "NormShare: Digits has 2000 entries" },
        { "layout entry outside its own list", new ShardLayout(10, [new ShardInfo(3, 0, 10, "a", "h", 1)]), "ShardLayout.Shards[0].Shard is 3, outside [0, 1)" },
        { "layout range beyond its count", new ShardLayout(10, [new ShardInfo(0, 0, 11, "a", "h", 1)]), "ShardLayout.Shards[0].Offset/Length is [0, 11), beyond the 10 parameters" },
        { "range beyond the parameters", new RegisterShard(1, 800_000, 100_000, "a", "h", 1, WireProtocol.Version), "RegisterShard: Offset/Length is [800000, 900000), beyond the 822410 parameters" },
        { "negative offset", new RegisterShard(1, -8, 10, "a", "h", 1, WireProtocol.Version), "RegisterShard: Offset/Length is [-8, 2), negative" },
        { "assignment beyond its job", new ShardAssignment(1, 2, 600_000, 300_000, Job), "ShardAssignment: Offset/Length is [600000, 900000), beyond the 822410 parameters" },
        { "assignment index beyond its count", new ShardAssignment(2, 2, 0, 10, Job), "ShardAssignment: Shard is 2, outside [0, 2)" },
        { "job of another size", Job with { ParameterCount = 1000 }, "JobDescription.ParameterCount is 1000, but the run has 822410 parameters" },
        { "micro-batch beyond the step's", new WorkAssignment(0, 1, 8, 8, 1), "WorkAssignment: MicroBatch is 8, outside [0, 8)" },
        { "port out of range", new WorkerEndpoint("w", 5, "127.0.0.1", 70_000), "WorkerEndpoint: DataPort is 70000, not a TCP port" },
        { "endpoint without the shard's key toward the worker", new WorkerEndpoint("w", 5, "127.0.0.1", 40010), "WorkerEndpoint: Key has 0 bytes, not a 32-byte data-plane key" },
        { "assignment without the shard's key toward the coordinator", new ShardAssignment(1, 2, 600_000, 222_410, Job),
            "ShardAssignment: CoordinatorKey has 0 bytes, not a 32-byte data-plane key" },
        { "worker layout without a key toward a shard", new RegisterAccepted("w", new ShardLayout(10, [new ShardInfo(0, 0, 10, "a", "h", 1)]), 0),
            "RegisterAccepted: Layout.Shards[0].Key has 0 bytes" },
        { "key of another length", Job with { DataKey = new byte[16] }, "JobDescription: JobDescription.DataKey has 16 bytes" },
        { "negative port", new RegisterWorker("w", "addr", "h", -1, WireProtocol.Version, "h"), "RegisterWorker: DataPort is -1, not a TCP port" },
        { "NaN learning rate", Hyper with { Optimizer = Hyper.Optimizer with { LearningRate = float.NaN } },
            "Hyperparameters: Hyperparameters.Optimizer.LearningRate is NaN, not finite" },
        { "NaN clip norm", Hyper with { ClipNorm = float.NaN }, "Hyperparameters: Hyperparameters.ClipNorm is NaN" },
        { "unknown mode", Hyper with { Mode = (TrainingMode)9 }, "Hyperparameters: Hyperparameters.Mode is 9, not a training mode" },
        { "zero batch", Hyper with { BatchSize = 0 }, "Hyperparameters: Hyperparameters.BatchSize is 0, below 1" },
        { "NaN norm", new ApplyClipped(3, double.NaN), "ApplyClipped: GlobalNorm is NaN" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void A_malformed_message_is_refused_naming_the_field_and_the_value(string what, object message, string problem)
    {
        var why = MessageValidation.Problem(message, Run);
        Assert.True(why is not null, $"{what}: accepted");
        Assert.Contains(problem, why);
    }

    [Fact]
    public void A_role_learns_the_runs_shape_from_the_assignment_or_layout_it_admitted()
    {
        var assignment = MessageSamples.All().OfType<ShardAssignment>().First();
        var learned = MessageValidation.Learn(assignment, default);
        Assert.Equal(new MessageBounds(2, 822_410), learned);
        Assert.Null(MessageValidation.Problem(new ShardRestored(5, 1))); // no shard count known yet: only the absolute bound
        Assert.Contains("Shard is 5, outside [0, 2)", MessageValidation.Problem(new ShardRestored(5, 1), learned));
        Assert.Equal(new MessageBounds(2, 822_410), MessageValidation.Learn(MessageSamples.All().OfType<RegisterAccepted>().First(), default));
        Assert.Equal(learned, MessageValidation.Learn(new WorkerGone("w"), learned));
    }

    /// <summary>The coordinator hands an id's data-plane keys to whoever registers it: a node may name only ids under its own
    /// address, and only the ids a node says are its own are checked (MessageGate refuses the rest as NotOwnId).</summary>
    [Fact]
    public void A_node_may_name_as_its_own_only_worker_and_shard_ids_under_its_address()
    {
        const string node = "akka.tcp://disttrain@10.0.0.2:4053", other = "akka.tcp://disttrain@10.0.0.3:4053";
        Assert.True(MessageValidation.OwnsId(node, node + "/w0"));
        Assert.True(MessageValidation.OwnsId(node, node + "/ps1"));
        Assert.False(MessageValidation.OwnsId(node, other + "/w0"));
        Assert.False(MessageValidation.OwnsId(node, node + "0/w0"));   // port 40530: another node
        Assert.False(MessageValidation.OwnsId(node, node));
        Assert.False(MessageValidation.OwnsId(node, "w0"));
        string id = node + "/w0";
        Assert.All(new object[]
        {
            new RequestJob(id, WireProtocol.Version), new RegisterWorker(id, node, "h", 1, WireProtocol.Version, "s"), new RequestWork(id, 0),
            Done with { WorkerId = id }, new RuntimeMessages.RequestShard(id, WireProtocol.Version),
            new RegisterShard(0, 0, 1, id, "h", 1, WireProtocol.Version), new RuntimeMessages.RejoinShard("j", 0, 0, 1, id, "h", 1, 0, [0], WireProtocol.Version),
        }, m => Assert.Equal(id, MessageValidation.ClaimedId(m)));
        // Ids the coordinator says about others (to a shard, to a worker) are not claims.
        Assert.Null(MessageValidation.ClaimedId(new WorkerEndpoint(id, 5, "h", 1)));
        Assert.Null(MessageValidation.ClaimedId(new RegisterAccepted(id, new ShardLayout(0, []), 0)));
        Assert.Null(MessageValidation.ClaimedId(new GradientAccepted(0, id, 0, 0)));
    }
}
