// Akka's logger while a node runs (akka.loggers in base.hocon): hands each event to NodeLog with this node's address.
using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace DistTrain.Cluster.Configuration;

public sealed class NodeLogActor : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private string? _node;

    public NodeLogActor()
    {
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(e => NodeLog.Write(e, Node()));
    }

    /// <summary>The remoting address, known once the provider has started (loggers start before it).</summary>
    private string? Node()
    {
        if (_node is not null) return _node;
        try
        {
            var address = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress;
            if (address.HasGlobalScope) NodeLog.LastNode = _node = address.ToString();
        }
        catch (Exception e) when (e is InvalidOperationException or NullReferenceException or NotSupportedException) { }
        return _node;
    }
}
