// What the coordinator keeps beside the protocol: the shards' state collected over the data plane at a version,
// checkpoints and the final model written from it, and a checkpoint's slices sent back on resume. The core decides
// when; this does the input and output (CoordinatorStore), or records the calls in a test.
using DistTrain.Cluster.Runtime;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Cores;

public interface ICoordinatorStore : IDisposable
{
    /// <summary>Starts collecting the shards' state at <paramref name="version"/>; the core tells every shard the message.
    /// Completion comes back as the core's Collected(version).</summary>
    SendCheckpoint Begin(long version);

    /// <summary>Shard <paramref name="shard"/>'s range went to the node whose data-plane sender id is <paramref name="senderId"/>
    /// (JobMapping.ShardSenderId; -1 when it has none): the only sender whose state of that range is collected.</summary>
    void ShardAssigned(int shard, int senderId);

    /// <summary>Asks again for <paramref name="version"/> (what already arrived is kept).</summary>
    SendCheckpoint Ask(long version);

    /// <summary>Forgets a collected (or abandoned) version.</summary>
    void Release(long version);

    /// <summary>Writes the collected <paramref name="version"/> as a checkpoint; returns its folder. Throws an IOException
    /// (or UnauthorizedAccessException, ArgumentException) when it cannot.</summary>
    string WriteCheckpoint(long version);

    /// <summary>Writes the final model from the collected <paramref name="version"/> (trained <paramref name="steps"/>
    /// steps), evaluates it and records the evaluation in <paramref name="log"/>.</summary>
    RunCompleted WriteModel(long version, long steps, StepLog log);

    /// <summary>Sends shard <paramref name="shard"/> its slice of the state at <paramref name="version"/> (it answers
    /// ShardRestored): the run's starting point (the checkpoint resumed from, --init's weights, or the initial weights) or a
    /// version collected and not released. Throws an IOException when the shard cannot be reached.</summary>
    void SendRestore(long version, ShardInfo shard);
}
