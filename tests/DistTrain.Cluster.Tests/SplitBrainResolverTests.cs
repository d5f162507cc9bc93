// The split-brain resolver as cluster-config/ sets it (keep-majority counted among coordinator
// nodes): in a two-node cluster whose worker has the lower address, the worker's crash must remove the
// worker, not down the coordinator — which Akka's default keep-majority does (shown for contrast).
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Cluster;
using DistTrain.Cluster.Configuration;
using Xunit;

namespace DistTrain.Cluster.Tests;

public sealed class SplitBrainResolverTests
{
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static ActorSystem Node(int port, string role, int seedPort, string extra) =>
        ActorSystem.Create("disttrain", ClusterConfig.Load("local", new ClusterOverrides
        {
            Port = port, Roles = [role], SeedNodes = [$"akka.tcp://disttrain@127.0.0.1:{seedPort}"],
            // The worker "crashes": terminating its system must not leave the cluster gracefully first.
            Hocon = "akka.coordinated-shutdown.run-by-actor-system-terminate = off\nakka.loglevel = WARNING\n" + extra,
        }));

    private static void WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("timed out waiting until " + what);
            Thread.Sleep(200);
        }
    }

    /// <summary>Forms coordinator + worker (worker on the lower port), kills the worker, returns the coordinator's fate.</summary>
    private static (bool CoordinatorDowned, int MembersLeft) KillWorker(string extraHocon)
    {
        var (low, high) = (FreePort(), FreePort());
        if (low > high) (low, high) = (high, low);
        var coordinator = Node(high, "coordinator", high, extraHocon);
        var worker = Node(low, "worker", high, extraHocon);
        try
        {
            var cc = Akka.Cluster.Cluster.Get(coordinator);
            WaitUntil(() => cc.State.Members.Count(m => m.Status == MemberStatus.Up) == 2, "both nodes are Up");
            Assert.True(Akka.Cluster.Cluster.Get(worker).SelfAddress.Port < cc.SelfAddress.Port); // the case that goes wrong by default

            worker.Terminate().Wait(TimeSpan.FromSeconds(30));
            WaitUntil(() => coordinator.WhenTerminated.IsCompleted
                            || cc.State.Members.All(m => m.Address == cc.SelfAddress)
                            || cc.SelfMember.Status is MemberStatus.Down or MemberStatus.Removed or MemberStatus.Exiting,
                "the split-brain resolver decided");
            var downed = coordinator.WhenTerminated.IsCompleted || cc.SelfMember.Status != MemberStatus.Up;
            return (downed, cc.State.Members.Count);
        }
        finally
        {
            worker.Terminate().Wait(TimeSpan.FromSeconds(30));
            coordinator.Terminate().Wait(TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public void With_the_shipped_config_a_dead_worker_is_removed_and_the_coordinator_stays_up()
    {
        var (downed, left) = KillWorker("");
        Assert.False(downed);
        Assert.Equal(1, left);
    }

    [Fact]
    public void Akka_default_keep_majority_would_down_the_coordinator_instead()
    {
        var (downed, _) = KillWorker("akka.cluster.split-brain-resolver.keep-majority.role = \"\"");
        Assert.True(downed);
    }
}
