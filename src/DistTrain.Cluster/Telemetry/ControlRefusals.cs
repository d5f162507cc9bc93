// Counts of control messages this process refused, by reason: the totals behind the refused_messages counter
// (disttrain_refused_messages on --metrics-port, tag reason) and the running count in each refusal's log line.
using System.Diagnostics.Metrics;

namespace DistTrain.Cluster.Telemetry;

public enum RefusalReason
{
    /// <summary>The payload did not decode to one of our messages (garbage, a length bomb, a foreign type).</summary>
    Undecodable = 0,
    /// <summary>The sender's node is not a member of the cluster.</summary>
    NotMember = 1,
    /// <summary>The message decoded but breaks its own rules (MessageValidation): a null field, a negative step, a shard out of range.</summary>
    Malformed = 2,
    /// <summary>The message names a worker or shard id of another node than its sender's (MessageValidation.ClaimedId): a member
    /// asking for another member's data-plane keys, or speaking for its role.</summary>
    NotOwnId = 3,
}

public static class ControlRefusals
{
    private static readonly long[] Counts = new long[Enum.GetValues<RefusalReason>().Length];
    private static readonly Counter<long> Refused = new Meter(RunMeters.MeterName).CreateCounter<long>(
        "refused_messages", "{message}", "Control messages refused and dropped (tag reason: undecodable, not_member, malformed, not_own_id).");

    /// <summary>Counts one refusal; returns this process's count of that reason so far.</summary>
    public static long Count(RefusalReason reason)
    {
        Refused.Add(1, new KeyValuePair<string, object?>("reason", Tag(reason)));
        return Interlocked.Increment(ref Counts[(int)reason]);
    }

    public static long Of(RefusalReason reason) => Interlocked.Read(ref Counts[(int)reason]);

    public static string Tag(RefusalReason reason) => reason switch
    {
        RefusalReason.Undecodable => "undecodable",
        RefusalReason.NotMember => "not_member",
        RefusalReason.NotOwnId => "not_own_id",
        _ => "malformed",
    };
}
