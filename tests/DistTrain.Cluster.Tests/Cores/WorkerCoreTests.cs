// The worker core without an ActorSystem, on a replica that records what it is asked to do: it asks for the job until
// it comes, registers what the replica built, waits for an assignment's version, drops one the shards have passed,
// asks for more work before the rest of a gradient goes, computes one assignment at a time in the order they came among
// those whose version it can take.
using DistTrain.Cluster.Cores;
using DistTrain.Cluster.Messages;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;

namespace DistTrain.Cluster.Tests.Cores;

public class WorkerCoreTests
{
    private sealed class FakeReplica : IReplica
    {
        public readonly List<string> Calls = [];
        public long Shards = -1;          // the version every shard has pushed
        public string? LayoutError;
        public long ModelVersion { get; private set; } = -1;

        public RegisterWorker Build(JobDescription job) { Calls.Add("build"); return new RegisterWorker("w", "addr", "127.0.0.1", 9000, WireProtocol.Version, job.SpecHash); }
        public string? Connect(ShardLayout layout) { Calls.Add("connect"); return LayoutError; }

        public bool Ready(WorkAssignment work, out bool stale)
        {
            stale = Shards > work.Version;
            return Shards == work.Version;
        }

        public void Compute(WorkAssignment work) { Calls.Add($"compute {work.Step}/{work.MicroBatch}"); ModelVersion = work.Version; }

        public MicroBatchDone? Flush(WorkAssignment work)
        {
            Calls.Add($"flush {work.Step}/{work.MicroBatch}");
            return new MicroBatchDone("w", work.Step, work.MicroBatch, 1, 8, 4, 1, 1, 0, 10);
        }
    }

    private static readonly JobDescription Job = new("job", "{}", "hash", 10, new DatasetInfo("synthetic", 8, 8, ""),
        new Hyperparameters(new OptimizerSpec("sgd", 0.1f, 0, 0, 0, 0, 0), "constant", 0, 8, 4, 1, 1, TrainingMode.Sync, 0, 0, 0, "none", 0));

    private static readonly ShardLayout Layout = new(10, [new ShardInfo(0, 0, 10, "ps", "127.0.0.1", 8000)]);

    private static WorkAssignment Work(long step, int mb) => new(0, step, mb, 2, step);

    private static (WorkerCore Core, FakeReplica Replica) Registered()
    {
        var replica = new FakeReplica();
        var core = new WorkerCore("w", replica);
        core.Start();
        core.Handle(Job);
        core.Handle(new RegisterAccepted("w", Layout, 0));
        return (core, replica);
    }

    private static object[] Messages(IReadOnlyList<Effect> effects) => effects.OfType<Send>().Select(s => s.Message).ToArray();

    [Fact]
    public void AsksForTheJobUntilItComesThenRegistersWhatTheReplicaBuilt()
    {
        var replica = new FakeReplica();
        var core = new WorkerCore("w", replica);
        Assert.IsType<RequestJob>(Assert.Single(Messages(core.Start())));
        Assert.IsType<RequestJob>(Assert.Single(Messages(core.Timer(WorkerCore.AskTimer))));
        var registered = core.Handle(Job);
        Assert.Contains(registered, e => e is StopTimer { Name: WorkerCore.AskTimer });
        Assert.Equal("hash", Assert.IsType<RegisterWorker>(Assert.Single(Messages(registered))).SpecHash);
        Assert.Empty(Messages(core.Timer(WorkerCore.AskTimer)));
        Assert.Empty(core.Handle(Job));                                   // a second copy builds nothing
        Assert.Equal(["build"], replica.Calls);
        Assert.Empty(core.Handle(Work(0, 0)));                            // not accepted yet: no work
        Assert.IsType<RequestWork>(Assert.Single(Messages(core.Handle(new RegisterAccepted("w", Layout, 0)))));
    }

    [Fact]
    public void WaitsForTheVersionThenAsksForMoreWorkBeforeTheGradientGoes()
    {
        var (core, replica) = Registered();
        Assert.Empty(core.Handle(Work(0, 0)));                            // version 0 not pushed yet
        Assert.Empty(core.Next());
        replica.Shards = 0;
        var effects = core.Next();
        Assert.Equal(["build", "connect", "compute 0/0"], replica.Calls);
        Assert.IsType<RequestWork>(Assert.IsType<Send>(effects[0]).Message);
        Assert.Equal(Work(0, 0), Assert.IsType<Flush>(effects[1]).Work);
        Assert.Equal(0, ((RequestWork)((Send)effects[0]).Message).LastVersion);
    }

    [Fact]
    public void AnAssignmentWhoseVersionThePushesPassedIsDroppedAndMoreWorkAskedFor()
    {
        var (core, replica) = Registered();
        replica.Shards = 3;
        var effects = core.Handle(Work(2, 1));
        Assert.IsType<RequestWork>(Assert.Single(Messages(effects)));
        Assert.DoesNotContain(effects, e => e is Flush);
        Assert.DoesNotContain(replica.Calls, c => c.StartsWith("compute"));
    }

    [Fact]
    public void QueuedAssignmentsAreComputedOneATurnInTheirOrder()
    {
        var (core, replica) = Registered();
        core.Handle(Work(1, 0));
        core.Handle(Work(1, 1));
        replica.Shards = 1;
        var first = core.Next();
        Assert.IsType<Continue>(first[^1]);                               // one compute a turn; the next on Continue
        Assert.Equal(Work(1, 0), first.OfType<Flush>().Single().Work);
        var second = core.Next();
        Assert.Equal(Work(1, 1), second.OfType<Flush>().Single().Work);
        Assert.DoesNotContain(second, e => e is Continue);
        Assert.Equal(["compute 1/0", "compute 1/1"], replica.Calls.Where(c => c.StartsWith("compute")));
    }

    [Fact]
    public void RequeuedWorkOfTheCurrentStepDoesNotWaitBehindALeaseOfTheNext()
    {
        var (core, replica) = Registered();
        replica.Shards = 4;
        Assert.Empty(Messages(core.Handle(Work(5, 0))));                  // a lease ahead: waits for version 5
        var effects = core.Handle(Work(4, 2));                            // requeued work of step 4, handed to the waiting worker
        Assert.Equal(Work(4, 2), effects.OfType<Flush>().Single().Work);
        Assert.Contains(effects, e => e is Continue);
        Assert.Empty(core.Next());                                        // step 5's lease still waits
        replica.Shards = 5;
        Assert.Equal(Work(5, 0), core.Next().OfType<Flush>().Single().Work);
    }

    [Fact]
    public void ALayoutThatDoesNotTileOrARefusalStopsTheWorkerWithTheReason()
    {
        var replica = new FakeReplica { LayoutError = "the ranges end at 8, not at the parameter count 10: 0: [0, 8)" };
        var core = new WorkerCore("w", replica);
        core.Start();
        core.Handle(Job);
        var stop = Assert.Single(core.Handle(new RegisterAccepted("w", Layout, 0)).OfType<Stop>());
        Assert.Contains("the ranges end at 8", stop.Reason);
        var refused = new WorkerCore("v", new FakeReplica());
        var why = Assert.Single(refused.Handle(new RegisterRejected("v", "model spec hash abc differs")).OfType<Stop>());
        Assert.Contains("spec hash abc", why.Reason);
        Assert.IsType<Stop>(Assert.Single(Registered().Core.Handle(new TrainingDone(8, 8, null))));
    }
}
