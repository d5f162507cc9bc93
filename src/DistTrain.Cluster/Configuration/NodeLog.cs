// How Akka's own log reaches a person (akka.loggers and akka.stdout-logger-class in base.hocon): the transport noise
// of a normal run — peers that leave after the run, a seed that is not listening yet, a busy core — is dropped, since
// its consequences are reported by our own code (the join timeout, "worker X left"); everything else becomes one
// line on stderr that names this node, what happened and what to do, never a stack trace.
// DISTTRAIN_AKKA_LOGLEVEL (INFO, DEBUG) shows Akka's full log instead, as Akka prints it.
using System.Text.RegularExpressions;
using Akka.Event;

namespace DistTrain.Cluster.Configuration;

public static partial class NodeLog
{
    /// <summary>Set: print Akka's full log (every event at that level and above, with causes) instead of the one-line digest.</summary>
    public static bool Verbose { get; } = !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("DISTTRAIN_AKKA_LOGLEVEL"));

    /// <summary>This process's node address once a logger learned it (the start-up and shutdown logger has no system to ask).</summary>
    public static string? LastNode { get; set; }

    private static readonly HashSet<string> Said = [];

    /// <summary>Where the lines go instead of stderr while set (the CLI's live view, which owns the terminal then).</summary>
    public static Action<string>? Sink { get; set; }

    /// <summary>Writes what <paramref name="e"/> means for the user to stderr: nothing, or one line (each distinct line once).</summary>
    public static void Write(LogEvent e, string? node)
    {
        if (Verbose) { Console.Error.WriteLine(e.ToString()); return; }
        var line = Digest(e.LogLevel(), e.Message?.ToString() ?? "", e.Cause, node ?? LastNode, ours: e.LogSource?.Contains("/user/") == true);
        if (line is null) return;
        lock (Said)
        {
            if (Said.Count >= 4096) Said.Clear(); // lines that name a step differ: keep the memory bounded on long runs
            if (!Said.Add(line)) return;
            if (Sink is { } sink) sink(line);
            else Console.Error.WriteLine(line);
        }
    }

    /// <summary>
    /// One line for the user, or null when the event is the lifecycle noise of a normal run. <paramref name="node"/> is this
    /// node's address (null: not known yet); <paramref name="ours"/>: logged by one of our actors, not by Akka itself.
    /// </summary>
    public static string? Digest(LogLevel level, string message, Exception? cause, string? node, bool ours = false)
    {
        if (level < LogLevel.WarningLevel || IsNoise(message, cause)) return null;
        // The coordinator's own line for a lost worker repeats its progress line ("worker X left; N micro-batch(es) re-queued").
        if (ours && message.StartsWith("Worker ", StringComparison.Ordinal) && message.Contains(" left; ", StringComparison.Ordinal)) return null;
        string who = $"node {node ?? "(starting)"}: ";
        if (message.Contains("Marking node(s) as UNREACHABLE", StringComparison.Ordinal))
            return who + $"lost contact with {Addresses(message)} (unreachable: its process stopped or hangs, or the network between the nodes failed); " +
                   (MemberRoles().Matches(message).Any(m => m.Groups[1].Value.Contains("coordinator", StringComparison.Ordinal))
                       ? "it holds the run's coordinator, so the run cannot go on: restart `disttrain train ... --resume DIR` there, then this node."
                       : "the cluster removes it after akka.cluster.split-brain-resolver.stable-after and re-queues its work. If it should be running, check its log.");
        if (message.StartsWith("SBR took decision", StringComparison.Ordinal))
        {
            var downed = SbrDowned().Match(message);
            bool self = message.Contains("including myself", StringComparison.Ordinal);
            return who + $"the split-brain resolver removed [{(downed.Success ? downed.Groups[1].Value : "?")}] from the cluster" +
                   (self ? "; this node is among them and leaves: restart it with --seed-nodes to rejoin." : "; their work is re-queued.");
        }
        if (message.StartsWith("Received gossip where this member has been downed", StringComparison.Ordinal))
            return who + "the cluster removed this node (it was unreachable for too long); restart it with --seed-nodes to rejoin.";
        var first = FirstLine(message);
        var because = cause is null || first.Contains(FirstLine(cause.Message), StringComparison.Ordinal) ? "" : $" ({cause.GetType().Name}: {FirstLine(cause.Message)})";
        if (ours) return who + first + because;
        return who + "Akka says: " + first + because + " (DISTTRAIN_AKKA_LOGLEVEL=INFO shows Akka's full log)";
    }

    /// <summary>Transport events a normal run produces: connections closing as peers leave, retries while a seed starts,
    /// heartbeats late on a busy core. A real loss shows up as UNREACHABLE or as our own errors.</summary>
    private static bool IsNoise(string message, Exception? cause) =>
        cause?.GetType().Name == "EndpointDisassociatedException"
        || message == "Disassociated"
        || message.StartsWith("Association with remote system", StringComparison.Ordinal)
        || message.StartsWith("Tried to associate with unreachable remote address", StringComparison.Ordinal)
        || message.StartsWith("Couldn't join seed nodes after", StringComparison.Ordinal)
        || message.StartsWith("Shutdown finished, but flushing might not have been successful", StringComparison.Ordinal)
        || message.StartsWith("Unable to REMOVE channel", StringComparison.Ordinal)
        || message.StartsWith("heartbeat interval is growing too large", StringComparison.Ordinal);

    private static string Addresses(string message)
    {
        var found = MemberAddress().Matches(message).Select(m => m.Groups[1].Value).Distinct().ToArray();
        return found.Length == 0 ? "a node" : string.Join(", ", found);
    }

    private static string FirstLine(string text)
    {
        int nl = text.IndexOfAny(['\r', '\n']);
        var line = (nl < 0 ? text : text[..nl]).Trim();
        return line.Length <= 300 ? line : line[..300] + "...";
    }

    [GeneratedRegex(@"address = ([^,\s\]]+)")]
    private static partial Regex MemberAddress();

    [GeneratedRegex(@"role=\[([^\]]*)\]")]
    private static partial Regex MemberRoles();

    [GeneratedRegex(@"is downing \[([^\]]*)\]")]
    private static partial Regex SbrDowned();
}
