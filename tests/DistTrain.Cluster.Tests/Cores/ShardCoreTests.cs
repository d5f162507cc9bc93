// The shard core without an ActorSystem: frames go into its inbox as the data plane hands them over, the inbox's
// events go back into the core, and the values it publishes are checked against the update computed here by hand
// (SGD: θ − lr · Σ g in micro-batch order; clipped by the coordinator's global norm; async: one update per gradient).
using DistTrain.Cluster.Cores;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests.Cores;

public class ShardCoreTests
{
    private const float Lr = 0.5f;

    private sealed class Harness
    {
        public readonly ShardCore Core;
        public readonly List<object> Posted = [];
        public readonly List<Effect> Effects = [];
        public readonly float[] Initial;
        public readonly int Length;

        public Harness(ModeOptions mode, float clipNorm = 0f, int microBatches = 2)
        {
            var job = new TrainJob
            {
                ModelSpecJson = Presets.Json("quadrant"), Dataset = "synthetic:quadrants:n=64", BatchSize = 8 * microBatches, MicroBatch = 8, Seed = 5,
                Optimizer = "sgd", Lr = Lr, ClipNorm = clipNorm,
            };
            Initial = job.Spec().Build(5).Store.Values.ToArray();
            Length = Initial.Length;
            var description = JobMapping.ToDescription(job, "job", Length, mode);
            description = description with { Dataset = description.Dataset with { TrainSamples = 64 } };
            Core = new ShardCore("node", NodeEndpoints.DefaultGradientChunkFloats, Posted.Add);
            Take(Core.Start());
            Take(Core.Handle(new ShardAssignment(0, 1, 0, Length, description)));
            Take(Core.Listening("127.0.0.1", 8000));
            // The workers whose frames these tests send, registered as the coordinator does once each asked for work.
            foreach (int sender in new[] { 7, 11, 22, 33, JobMapping.SenderIdOf("node-b/w0"), JobMapping.SenderIdOf("node-c/w0") })
                Take(Core.Handle(new WorkerEndpoint($"w{sender}", sender, "127.0.0.1", 9000)));
        }

        public IReadOnlyList<Effect> Take(IReadOnlyList<Effect> effects) { Effects.AddRange(effects); return effects; }

        public IEnumerable<T> Sent<T>() => Effects.OfType<Send>().Select(s => s.Message).OfType<T>();

        /// <summary>A whole gradient frame of (step, micro-batch) through the inbox, then the inbox's events into the core.</summary>
        public void Gradient(long step, int microBatch, long version, float[] g)
        {
            IFrameHandler inbox = Core.Inbox!;
            var h = new FrameHeader(FrameKind.Gradient, step, microBatch, version, 0, 0, g.Length, 0, 7);
            Assert.Null(inbox.Rent(h, out var slot));
            g.CopyTo(slot);
            inbox.OnFrame(h, slot);
            foreach (var e in Posted.ToArray()) Take(Core.Handle(e));
            Posted.Clear();
        }
    }

    private static float[] Grad(int seed, int n) => Enumerable.Range(0, n).Select(i => MathF.Sin(seed * 7 + i) * 0.3f).ToArray();

    [Fact]
    public void SyncAppliesTheStepOnceEveryMicroBatchIsHereAndPushesBeforeTheDueCheckpoint()
    {
        var h = new Harness(ModeOptions.Sync);
        Assert.IsType<RequestShard>(h.Sent<object>().First());
        var serve = Assert.Single(h.Effects.OfType<Serve>());
        Assert.Equal(h.Length, serve.PushChunks.Sum(c => c.Length));
        Assert.Equal(8000, Assert.Single(h.Sent<RegisterShard>()).DataPort);
        h.Take(h.Core.Handle(new SendCheckpoint("coordinator", 7000, 1))); // asked ahead: due once version 1 exists
        Assert.Empty(h.Effects.OfType<SendState>());

        float[] g0 = Grad(1, h.Length), g1 = Grad(2, h.Length);
        h.Gradient(0, 1, 0, g1);                            // out of order: the sum is still in micro-batch order
        Assert.Single(h.Sent<GradientAccepted>());
        Assert.Empty(h.Sent<VersionPublished>());
        int before = h.Effects.Count;
        h.Gradient(0, 0, 0, g0);
        var after = h.Effects.Skip(before).ToList();
        Assert.Equal(1, Assert.Single(h.Sent<VersionPublished>()).Version);
        // The push, then the checkpoint of the version it carries, then the coordinator hears of it.
        int push = after.FindIndex(e => e is Push), state = after.FindIndex(e => e is SendState), published = after.FindIndex(e => e is Send { Message: VersionPublished });
        Assert.True(push >= 0 && push < state && state < published, string.Join(", ", after));
        var values = h.Core.Shard!.Values.ToArray();
        for (int i = 0; i < h.Length; i++) Assert.Equal(h.Initial[i] - Lr * (g0[i] + g1[i]), values[i], 6);
    }

    /// <summary>
    /// The coordinator died: the shard asks whoever takes over to have it back, naming its version and the versions it
    /// can roll back to by itself (its start, a copy, and the current one); told to roll back to one it holds, it puts
    /// that state back (the start's values exactly), forgets its workers and answers ShardRestored; one it does not hold
    /// is refused and nothing changes.
    /// </summary>
    [Fact]
    public void AShardWhoseCoordinatorDiedRejoinsNamingWhatItCanRollBackToAndRollsBackToIt()
    {
        var h = new Harness(ModeOptions.Sync, microBatches: 1);
        h.Gradient(0, 0, 0, Grad(5, h.Length));
        var applied = h.Core.Shard!.Values.ToArray();
        h.Take(h.Core.CoordinatorLost());
        var rejoin = Assert.Single(h.Sent<RejoinShard>());
        Assert.Equal(("job", 0, 1L), (rejoin.JobId, rejoin.Shard, rejoin.Version));
        Assert.Equal([0L, 1L], rejoin.Kept);
        Assert.Single(h.Effects.OfType<StartTimer>(), t => t.Name == ShardCore.RejoinTimer);

        h.Take(h.Core.Handle(new RollBack(5)));                          // not a version it holds
        Assert.Empty(h.Sent<ShardRestored>());
        Assert.Equal(applied, h.Core.Shard.Values.ToArray());

        h.Take(h.Core.Handle(new RollBack(0)));
        Assert.Equal(0, Assert.Single(h.Sent<ShardRestored>()).Version);
        Assert.Single(h.Effects.OfType<RemoveAllWorkers>());
        Assert.Equal(h.Initial, h.Core.Shard.Values.ToArray());
        Assert.Equal(0, h.Core.Shard.Version);
        int asked = h.Sent<RejoinShard>().Count();
        h.Take(h.Core.Timer(ShardCore.RejoinTimer));                     // answered: it stops asking
        Assert.Equal(asked, h.Sent<RejoinShard>().Count());
    }

    [Fact]
    public void ClipNormWaitsForTheGlobalNormAndAppliesTheClippedSum()
    {
        var h = new Harness(ModeOptions.Sync, clipNorm: 0.1f, microBatches: 1);
        float[] g = Grad(3, h.Length);
        h.Gradient(0, 0, 0, g);
        var share = Assert.Single(h.Sent<NormShare>());
        Assert.Equal(0, share.Step);
        Assert.Empty(h.Sent<VersionPublished>());
        Assert.Empty(h.Take(h.Core.Handle(new ApplyClipped(5, 1.0)))); // another step's norm: ignored
        double norm = Math.Sqrt(g.Sum(x => (double)x * x));
        Assert.Equal(norm * norm, DistTrain.Nn.Optimizers.ExactSquareSum.FromDigits(share.Digits).ToDouble(), 9);
        h.Take(h.Core.Handle(new ApplyClipped(0, norm)));
        Assert.Equal(1, Assert.Single(h.Sent<VersionPublished>()).Version);
        float factor = (float)(0.1 / (norm + 1e-6));
        var values = h.Core.Shard!.Values.ToArray();
        for (int i = 0; i < h.Length; i++) Assert.Equal(h.Initial[i] - Lr * g[i] * factor, values[i], 5);
    }

    [Fact]
    public void AsyncAppliesEachGradientAsItArrivesWithTheMicroBatchShareOfTheRate()
    {
        var h = new Harness(new ModeOptions(TrainingMode.Async, Staleness: 2), microBatches: 2);
        float[] g = Grad(4, h.Length);
        h.Gradient(0, 0, 0, g);
        var applied = Assert.Single(h.Sent<AsyncApplied>());
        Assert.Equal((0L, 0, 1L, 0L), (applied.Step, applied.MicroBatch, applied.Version, applied.Staleness));
        Assert.Single(h.Effects.OfType<Push>());
        var values = h.Core.Shard!.Values.ToArray();
        for (int i = 0; i < h.Length; i++) Assert.Equal(h.Initial[i] - Lr * 0.5f * g[i], values[i], 6); // M/B = 8/16
        h.Gradient(0, 1, 0, g);                                      // computed on version 0, applied as update 2
        Assert.Equal(1, h.Sent<AsyncApplied>().Last().Staleness);
    }

    [Fact]
    public void ARefusedShardStopsWithTheReasonAndATooLateCheckpointIsSkippedSayingSo()
    {
        var h = new Harness(ModeOptions.Sync, microBatches: 1);
        h.Gradient(0, 0, 0, Grad(5, h.Length));
        var late = h.Take(h.Core.Handle(new SendCheckpoint("coordinator", 7000, 0)));
        Assert.Contains("asked for too late", Assert.IsType<LogLine>(Assert.Single(late)).Text);
        var refused = new ShardCore("other", 1024, _ => { });
        refused.Start();
        var stop = refused.Handle(new RegisterRejected("other", "all 1 key ranges are taken (shard 0 [0, 60) on node)"));
        Assert.Contains("shard 0 [0, 60)", Assert.Single(stop.OfType<Stop>()).Reason);
    }
    /// <summary>
    /// The determinism audit on the shard: a second copy of a kept gradient with the same checksum is dropped without a word
    /// (re-executed work is bit-reproducible), one with another checksum is reported naming both senders — also after its
    /// step was applied; three steps later the record is gone.
    /// </summary>
    [Fact]
    public void ASecondCopyIsComparedByChecksumAndOnlyADifferenceIsReported()
    {
        var h = new Harness(ModeOptions.Sync, microBatches: 2);
        IFrameHandler inbox = h.Core.Inbox!;
        var g = Grad(3, h.Length);
        ulong sum = DataPlaneClient.Checksum(g);
        void Frame(long step, int mb, int sender, ulong checksum, bool kept)
        {
            var header = new FrameHeader(FrameKind.Gradient, step, mb, step, 0, 0, h.Length, checksum, sender);
            var reason = inbox.Rent(header, out var slot);
            if (!kept) { Assert.Equal(DropReason.Rejected, reason); return; }
            Assert.Null(reason);
            g.CopyTo(slot);
            inbox.OnFrame(header, slot);
        }
        Frame(0, 0, sender: 11, sum, kept: true);
        Frame(0, 0, sender: 22, sum, kept: false);                 // an equal copy
        Assert.DoesNotContain(h.Posted, e => e is ShardInbox.GradientDropped or ShardInbox.CopiesDiffer);
        Frame(0, 0, sender: 22, sum ^ 1, kept: false);             // a copy that differs
        var differ = Assert.Single(h.Posted.OfType<ShardInbox.CopiesDiffer>());
        Assert.Equal((11, 22, 0L, 0, 0L), (differ.KeptSender, differ.OtherSender, differ.Step, differ.MicroBatch, differ.Offset));
        foreach (var e in h.Posted.ToArray()) h.Take(h.Core.Handle(e));
        h.Posted.Clear();
        var mismatch = Assert.Single(h.Sent<GradientMismatch>());
        Assert.Equal((0, 11, 22), (mismatch.Shard, mismatch.KeptSender, mismatch.OtherSender));
        Frame(0, 1, sender: 11, sum, kept: true);                  // step 0 complete: applied
        foreach (var e in h.Posted.ToArray()) h.Take(h.Core.Handle(e));
        h.Posted.Clear();
        Frame(0, 1, sender: 33, sum ^ 2, kept: false);             // late, after the step was applied: still compared
        Assert.Single(h.Posted.OfType<ShardInbox.CopiesDiffer>());
        h.Posted.Clear();
        for (long step = 1; step <= 4; step++)
            for (int mb = 0; mb < 2; mb++)
            {
                Frame(step, mb, sender: 11, sum, kept: true);
                foreach (var e in h.Posted.ToArray()) h.Take(h.Core.Handle(e));
                h.Posted.Clear();
            }
        Frame(0, 0, sender: 22, sum ^ 1, kept: false);             // step 0 is 5 versions back: no record, an ordinary drop
        Assert.IsType<ShardInbox.GradientDropped>(Assert.Single(h.Posted));
    }

    /// <summary>
    /// A gradient chunk or a micro-batch's statistics is taken only from a worker the coordinator registered with this shard
    /// (WorkerEndpoint) and until it left (WorkerGone) — any registered worker, so a backup copy of a micro-batch counts too.
    /// Another holder of the job key (a peer out of its role) gets NotPermitted and changes nothing.
    /// </summary>
    [Fact]
    public void AGradientIsTakenOnlyFromARegisteredWorker()
    {
        var h = new Harness(ModeOptions.Sync, microBatches: 2);
        IFrameHandler inbox = h.Core.Inbox!;
        const string late = "node-x/w0";
        int sender = JobMapping.SenderIdOf(late);
        var g = Grad(4, h.Length);
        var header = new FrameHeader(FrameKind.Gradient, 0, 0, 0, 0, 0, h.Length, 0, sender);
        var statistics = header with { Kind = FrameKind.Statistics, Length = 0 };
        Assert.Equal(DropReason.NotPermitted, inbox.Rent(header, out _));
        Assert.Equal(DropReason.NotPermitted, inbox.Rent(statistics, out _));
        Assert.Empty(h.Posted);

        h.Take(h.Core.Handle(new WorkerEndpoint(late, sender, "127.0.0.1", 9001)));
        Assert.Null(inbox.Rent(header, out var slot));
        g.CopyTo(slot);
        inbox.OnFrame(header, slot);
        // A backup copy of the other micro-batch by another registered worker is taken as well.
        h.Gradient(0, 1, 0, g);
        Assert.Equal(2, h.Sent<GradientAccepted>().Count());

        h.Take(h.Core.Handle(new WorkerGone(late)));
        Assert.Equal(DropReason.NotPermitted, inbox.Rent(header with { Step = 1 }, out _));
    }

    /// <summary>A restore frame (the state a shard starts from) is taken only from the coordinator: at version 0 a worker's
    /// restore frame, which once replaced a shard's initial weights, is NotPermitted; the coordinator's is staged.</summary>
    [Fact]
    public void ARestoreIsTakenOnlyFromTheCoordinator()
    {
        var h = new Harness(ModeOptions.Sync);
        IFrameHandler inbox = h.Core.Inbox!;
        var restore = new FrameHeader(FrameKind.Parameters, 0, 0, 0, 0, 0, h.Length, 0, 7);
        Assert.Equal(DropReason.NotPermitted, inbox.Rent(restore, out _));
        Assert.Equal(DropReason.NotPermitted, inbox.Rent(restore with { Kind = FrameKind.OptimizerState, SenderId = JobMapping.ShardSenderId("node", 0) }, out _));
        Assert.Null(inbox.Rent(restore with { SenderId = JobMapping.SenderIdOf("coordinator") }, out var staged));
        Assert.Equal(h.Length, staged.Length);
    }

    [Fact]
    public void AShardActorToldEveryRangeIsTakenSaysItWaitsAsASpareOnceAndKeepsAsking()
    {
        var spare = new ShardCore("spare", 1024, _ => { });
        Assert.Contains(spare.Start().OfType<Send>(), s => s.Message is RequestShard);
        var told = spare.Handle(new ShardStandby("all 2 key ranges are taken (shard 0 [0, 60) on a)"));
        Assert.Contains("waits as a spare: all 2 key ranges", Assert.Single(told.OfType<LogLine>()).Text);
        Assert.Empty(spare.Handle(new ShardStandby("again")));
        Assert.Contains(spare.Timer(ShardCore.AskTimer).OfType<Send>(), s => s.Message is RequestShard);
    }

    [Fact]
    public void AMovedLeaseClosesTheOldHoldersConnectionOnlyWhileItsFrameOfThatMicroBatchIsHalfHere()
    {
        var h = new Harness(ModeOptions.Sync);
        const string paused = "node-b/w0";
        int sender = JobMapping.SenderIdOf(paused);
        IFrameHandler inbox = h.Core.Inbox!;
        var header = new FrameHeader(FrameKind.Gradient, 0, 1, 0, 0, 0, h.Length, 0, sender);
        Assert.Null(inbox.Rent(header, out _));                 // its frame of micro-batch 1 began and stalls
        Assert.Empty(h.Take(h.Core.Handle(new LeaseMoved(0, 0, paused))).OfType<Disconnect>());      // another micro-batch
        Assert.Empty(h.Take(h.Core.Handle(new LeaseMoved(0, 1, "node-c/w0"))).OfType<Disconnect>()); // another worker
        var close = Assert.Single(h.Take(h.Core.Handle(new LeaseMoved(0, 1, paused))).OfType<Disconnect>());
        Assert.Equal(sender, close.SenderId);
        Assert.Contains("step 0 micro-batch 1", close.Why);
        inbox.OnDropped(header, DropReason.ConnectionLost);     // what closing does to the frame: its slot is free again
        Assert.Empty(h.Take(h.Core.Handle(new LeaseMoved(0, 1, paused))).OfType<Disconnect>());
        h.Gradient(0, 1, 0, Grad(2, h.Length));                 // the new holder's copy is taken
        Assert.Contains(h.Sent<GradientAccepted>(), a => a.MicroBatch == 1);
    }
}
