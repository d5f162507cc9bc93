// The gate in front of a role's core (MessageGate): a malformed control message is refused, logged and counted, and the
// role keeps its state (Akka would have restarted a parameter-server shard whose core threw on it, and the restarted
// shard asks for a range again with nothing it held); a well-formed message from a node that is not a member of the
// cluster is refused as well (with or without a sender), while the same message from a member is taken.
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Telemetry;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public class MessageGateTests : TestKit
{
    private static ShardAssignment Assignment(out int parameters)
    {
        var job = new TrainJob { ModelSpecJson = TestData.TinyCnn, Dataset = "idx:/unused", BatchSize = 8, MicroBatch = 4, Optimizer = "sgd", Lr = 0.1f, Seed = 1 };
        parameters = job.Spec().Build(1).ParameterCount;
        var description = JobMapping.ToDescription(job, "job-gate", parameters) with { Dataset = new DatasetInfo("idx:/unused", 16, 4, "") };
        var key = DataPlaneKey.Create().ToWire();
        return new ShardAssignment(0, 1, 0, parameters, description with { DataKey = key }) { CoordinatorKey = key };
    }

    [Fact]
    public void A_malformed_assignment_is_refused_and_logged_and_the_shard_is_not_restarted_into_a_fresh_state()
    {
        var coordinator = CreateTestProbe();
        var ps = Sys.ActorOf(ParameterServerActor.Props(coordinator.Ref, "node-gate", NodeEndpoints.Loopback));
        coordinator.ExpectMsg<RequestShard>(); // PreStart: a restarted shard would ask again
        var good = Assignment(out int n);
        long before = ControlRefusals.Of(RefusalReason.Malformed);

        EventFilter.Warning(contains: "ShardAssignment: Job is null").ExpectOne(() => ps.Tell(good with { Job = null! }));
        EventFilter.Warning(contains: $"ShardAssignment: Offset/Length is [0, {n + 1}), beyond the {n} parameters")
            .ExpectOne(() => ps.Tell(good with { Length = n + 1 }));
        Assert.True(ControlRefusals.Of(RefusalReason.Malformed) >= before + 2);

        // The same shard actor takes the well-formed assignment.
        ps.Tell(good);
        var registered = (RegisterShard)coordinator.FishForMessage(m => m is RegisterShard, TimeSpan.FromSeconds(10));
        Assert.Equal((0, 0L, n), (registered.Shard, registered.Offset, registered.Length));

        // A checkpoint ask naming a port no socket can have: the shard's connect would throw and Akka would restart the actor,
        // which then asks for a range again with none of its weights. Refused instead, and the shard keeps its range.
        EventFilter.Warning(contains: "SendCheckpoint: DataPort is 70000, not a TCP port")
            .ExpectOne(() => ps.Tell(new SendCheckpoint("127.0.0.1", 70_000, 0)));
        var after = coordinator.ReceiveWhile(TimeSpan.FromSeconds(1.5), m => m);
        Assert.DoesNotContain(after, m => m is RequestShard);
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [Fact]
    public async Task A_well_formed_message_from_a_node_outside_the_cluster_is_refused_and_the_same_from_a_member_taken()
    {
        int memberPort = FreePort(), strangerPort = FreePort();
        var member = ActorSystem.Create("disttrain", ClusterConfig.Load("local", new ClusterOverrides { Port = memberPort }));
        var stranger = ActorSystem.Create("disttrain", ClusterConfig.Load("local", new ClusterOverrides { Port = strangerPort, Hocon = "akka.actor.provider = remote" }));
        try
        {
            var cluster = Akka.Cluster.Cluster.Get(member);
            var up = new TaskCompletionSource();
            cluster.RegisterOnMemberUp(() => up.TrySetResult());
            cluster.Join(cluster.SelfAddress);
            await up.Task.WaitAsync(TimeSpan.FromSeconds(20));

            var coordinator = new Akka.TestKit.TestProbe(member, new Akka.TestKit.Xunit2.XunitAssertions());
            var ps = member.ActorOf(ParameterServerActor.Props(coordinator.Ref, "node-member", NodeEndpoints.Loopback), "ps");
            coordinator.ExpectMsg<RequestShard>(TimeSpan.FromSeconds(10));
            var assignment = Assignment(out _);

            // The stranger reaches the shard over remoting (no TLS in this configuration) with a message it would take.
            long before = ControlRefusals.Of(RefusalReason.NotMember);
            var strangerProbe = new Akka.TestKit.TestProbe(stranger, new Akka.TestKit.Xunit2.XunitAssertions());
            stranger.ActorSelection($"akka.tcp://disttrain@127.0.0.1:{memberPort}/user/ps").Tell(assignment, strangerProbe.Ref);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (ControlRefusals.Of(RefusalReason.NotMember) == before && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Equal(before + 1, ControlRefusals.Of(RefusalReason.NotMember));
            // The same without a sender: it arrives as from this node's dead letters, which a local sender would be.
            var shard = await stranger.ActorSelection($"akka.tcp://disttrain@127.0.0.1:{memberPort}/user/ps").ResolveOne(TimeSpan.FromSeconds(10));
            shard.Tell(assignment, ActorRefs.NoSender);
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (ControlRefusals.Of(RefusalReason.NotMember) == before + 1 && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Equal(before + 2, ControlRefusals.Of(RefusalReason.NotMember));
            // The shard did not take the stranger's range (it goes on asking the coordinator for one).
            Assert.DoesNotContain(coordinator.ReceiveWhile(TimeSpan.FromMilliseconds(300), m => m), m => m is RegisterShard);

            ps.Tell(assignment, coordinator.Ref); // a member (this node) sends the same
            Assert.Equal(0, ((RegisterShard)coordinator.FishForMessage(m => m is RegisterShard, TimeSpan.FromSeconds(10))).Shard);
        }
        finally
        {
            await Task.WhenAll(member.Terminate(), stranger.Terminate()).WaitAsync(TimeSpan.FromSeconds(20));
        }
    }
}
