// Akka's start-up and shutdown logger (akka.stdout-logger-class in base.hocon), which runs before NodeLogActor starts and
// after it stops: the same one-line digest (NodeLog), so the end of a run is as quiet as its middle.
using Akka.Event;

namespace DistTrain.Cluster.Configuration;

public sealed class NodeStdoutLogger : MinimalLogger
{
    protected override void Log(object message)
    {
        if (message is LogEvent e) NodeLog.Write(e, null);
    }
}
