// Which data-plane keys the coordinator hands to whom (DataPlaneKey): every node gets the listener key of its own sender
// id and, for each listener it must reach, the peer key of its sender id there, inside the control messages it gets
// anyway. The job key they come from stays with the coordinator (and the standby coordinators that may take over).
using DistTrain.Cluster.DataPlane;

namespace DistTrain.Cluster.Runtime;

public sealed class JobKeys(DataPlaneKey job)
{
    /// <summary>The job key itself: for the coordinator's own connections and the standby coordinators only.</summary>
    public DataPlaneKey Job => job;

    /// <summary>The listener key of the node whose sender id is <paramref name="id"/>.</summary>
    public DataPlaneKey Listener(int id) => job.ListenerKey(id);

    /// <summary>The key <paramref name="sender"/> proves itself with to <paramref name="listener"/>'s data-plane listener.</summary>
    public DataPlaneKey Peer(int listener, int sender) => job.ListenerKey(listener).PeerKey(sender);

    /// <summary>Worker <paramref name="workerId"/>'s listener key (its JobDescription.DataKey).</summary>
    public byte[] WorkerListener(string workerId) => Listener(JobMapping.SenderIdOf(workerId)).ToWire();

    /// <summary>The key of the pair (worker, shard) toward the shard's listener: the worker's gradients (ShardInfo.Key).</summary>
    public byte[] WorkerToShard(string workerId, int shardSender) => Peer(shardSender, JobMapping.SenderIdOf(workerId)).ToWire();

    /// <summary>The key of the pair (shard, worker) toward the worker's listener: the shard's pushes (WorkerEndpoint.Key).</summary>
    public byte[] ShardToWorker(int shardSender, string workerId) => Peer(JobMapping.SenderIdOf(workerId), shardSender).ToWire();

    /// <summary>The key of the pair (shard, coordinator) toward the coordinator's listener: checkpoint frames (ShardAssignment.CoordinatorKey).</summary>
    public byte[] ShardToCoordinator(int shardSender) => Peer(JobMapping.CoordinatorSenderId, shardSender).ToWire();
}
