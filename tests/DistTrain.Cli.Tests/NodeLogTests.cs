// NodeLog's digest of Akka's log, on the exact texts Akka 1.5 logs: a normal run's transport noise is dropped; a lost
// node, a split-brain decision or anything unknown becomes one line naming this node, without a stack trace.
using Akka.Event;
using DistTrain.Cluster.Configuration;
using Xunit;

namespace DistTrain.Cli.Tests;

public sealed class NodeLogTests
{
    private const string Node = "akka.tcp://disttrain@127.0.0.1:4053";

    [Theory]
    [InlineData("Association with remote system akka.tcp://disttrain@127.0.0.1:45227 has failed; address is now gated for 5000 ms. Reason is: [Akka.Remote.EndpointDisassociatedException: Disassociated\n   at Akka.Remote.EndpointWriter.PublishAndThrow(Exception reason, LogLevel level, Boolean needToThrow)]")]
    [InlineData("Disassociated")]
    [InlineData("Shutdown finished, but flushing might not have been successful and some messages might have been dropped. Increase akka.remote.flush-wait-on-shutdown to a larger value to avoid this.")]
    [InlineData("Unable to REMOVE channel [[::ffff:127.0.0.1]:42225->[::ffff:127.0.0.1]:58308](Id=636c3e4d) from connection group. May not shut down cleanly.")]
    [InlineData("Tried to associate with unreachable remote address [akka.tcp://disttrain@127.0.0.1:39621]. Address is now gated for 5000 ms, all messages to this address will be delivered to dead letters.")]
    [InlineData("Couldn't join seed nodes after [2] attempts, will try again. seed-nodes=[akka.tcp://disttrain@127.0.0.1:39621]")]
    [InlineData("heartbeat interval is growing too large for address akka.tcp://disttrain@127.0.0.1:53455: 2029 millis")]
    public void TheTransportNoiseOfANormalRunIsDropped(string message)
    {
        Assert.Null(NodeLog.Digest(LogLevel.WarningLevel, message, null, Node));
        Assert.Null(NodeLog.Digest(LogLevel.ErrorLevel, message, null, Node));
    }

    [Fact]
    public void AnErrorCausedByADisassociationIsDropped() =>
        Assert.Null(NodeLog.Digest(LogLevel.ErrorLevel, "Something closed", new FakeEndpoint.EndpointDisassociatedException(), Node));

    [Fact]
    public void TheCoordinatorsLineForALostWorkerIsLeftToItsProgressLine() =>
        Assert.Null(NodeLog.Digest(LogLevel.WarningLevel, "Worker akka.tcp://disttrain@127.0.0.1:40719/w0 left; 1 micro-batch(es) of step 7 re-queued", null, Node, ours: true));

    [Fact]
    public void InfoAndDebugAreNeverShown() =>
        Assert.Null(NodeLog.Digest(LogLevel.InfoLevel, "Cluster Node [x] - Starting up...", null, Node));

    [Fact]
    public void AnUnreachableNodeIsOneLineNamingItAndWhatHappensNext()
    {
        var line = NodeLog.Digest(LogLevel.WarningLevel,
            "Cluster Node [akka.tcp://disttrain@127.0.0.1:4053] - Marking node(s) as UNREACHABLE [Member(address = akka.tcp://disttrain@127.0.0.1:38087, Uid=123, status = Up, role=[worker], upNumber=2, version=0.0.0)]. Node roles [coordinator,ps]",
            null, Node)!;
        Assert.StartsWith($"node {Node}: lost contact with akka.tcp://disttrain@127.0.0.1:38087 ", line);
        Assert.Contains("re-queues its work", line);
        Assert.DoesNotContain("\n", line);
        // A worker that loses the coordinator's node: nothing is re-queued; the run must be restarted.
        var lost = NodeLog.Digest(LogLevel.WarningLevel,
            "Cluster Node [akka.tcp://disttrain@127.0.0.1:39255] - Marking node(s) as UNREACHABLE [Member(address = akka.tcp://disttrain@127.0.0.1:47123, Uid=9, status = Up, role=[coordinator,ps], upNumber=1, version=0.0.0)]. Node roles [worker]",
            null, "akka.tcp://disttrain@127.0.0.1:39255")!;
        Assert.Contains("holds the run's coordinator", lost);
        Assert.Contains("--resume", lost);
        Assert.DoesNotContain("re-queues", lost);
    }

    [Fact]
    public void ADowningDecisionNamesTheNodesAndWhetherThisOneLeaves()
    {
        var other = NodeLog.Digest(LogLevel.WarningLevel,
            "SBR took decision DownUnreachable and is downing [akka.tcp://disttrain@10.77.5.2:40000], [1] unreachable of [3] members, full reachability status: [...]", null, Node)!;
        Assert.Contains("removed [akka.tcp://disttrain@10.77.5.2:40000] from the cluster; their work is re-queued", other);
        var self = NodeLog.Digest(LogLevel.WarningLevel,
            $"SBR took decision DownReachable and is downing [{Node}] including myself, , [1] unreachable of [2] members", null, Node)!;
        Assert.Contains("restart it with --seed-nodes", self);
    }

    [Fact]
    public void AnythingElseIsItsFirstLineWithTheCausesMessageButNoStackTrace()
    {
        Exception cause;
        try { throw new InvalidOperationException("bad frame\nsecond line"); }
        catch (InvalidOperationException e) { cause = e; }
        var line = NodeLog.Digest(LogLevel.ErrorLevel, "Serializer failed\n   at Some.Frame()", cause, Node)!;
        Assert.Equal($"node {Node}: Akka says: Serializer failed (InvalidOperationException: bad frame) (DISTTRAIN_AKKA_LOGLEVEL=INFO shows Akka's full log)", line);
        var io = new IOException("Data plane connection to 127.0.0.1:43189 failed while sending Gradient(step=3): Connection timed out");
        Assert.Equal($"node {Node}: {io.Message}", NodeLog.Digest(LogLevel.ErrorLevel, io.Message, io, Node, ours: true)); // the cause said once
        var ours = NodeLog.Digest(LogLevel.WarningLevel, "TLS: refused 10.0.0.9: its certificate CN=x is not signed by the cluster CA", null, Node, ours: true)!;
        Assert.Equal($"node {Node}: TLS: refused 10.0.0.9: its certificate CN=x is not signed by the cluster CA", ours);
    }
}

/// <summary>Stands in for Akka.Remote's exception, which NodeLog recognises by its type name.</summary>
internal static class FakeEndpoint
{
    public sealed class EndpointDisassociatedException() : Exception("Disassociated");
}
