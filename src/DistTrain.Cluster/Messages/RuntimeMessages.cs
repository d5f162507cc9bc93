// Messages of the training runtime that complete the coordinator/PS protocol: shard assignment,
// worker endpoints for parameter pushes, and parameter collection for checkpoints. Tensor bytes
// never travel here; they go over the data plane.
namespace DistTrain.Cluster.Messages;

public static class RuntimeMessages
{
    /// <summary>PS node → Coordinator: "which shard am I, and what is the job?"</summary>
    public sealed record RequestShard(string NodeId, int ProtocolVersion) : IDistTrainMessage;

    /// <summary>Coordinator → PS node: own [Offset, Offset+Length) as shard <paramref name="Shard"/> of <paramref name="ShardCount"/>.</summary>
    /// <paramref name="Job"/>'s DataKey is this shard's listener key (DataPlaneKey.ListenerKey of its sender id, JobMapping.ShardSenderId).
    public sealed record ShardAssignment(int Shard, int ShardCount, long Offset, int Length, CoordinatorMessages.JobDescription Job) : IDistTrainMessage
    {
        /// <summary>The key this shard's sender id proves itself with to the coordinator's listener (checkpoint frames).</summary>
        public byte[] CoordinatorKey { get; init; } = [];

        public override string ToString() =>
            $"ShardAssignment {{ Shard = {Shard}, ShardCount = {ShardCount}, Offset = {Offset}, Length = {Length}, Job = {Job}, CoordinatorKey = ({CoordinatorKey.Length} bytes, not shown) }}";
    }

    /// <summary>Coordinator → PS node: every key range has an owner; stay as a spare and keep asking: a range whose owner is lost
    /// goes to the first spare that asks.</summary>
    public sealed record ShardStandby(string Reason) : IDistTrainMessage;

    /// <summary>Coordinator → PS shard: push every new version of your range to this worker's data-plane endpoint.</summary>
    public sealed record WorkerEndpoint(string WorkerId, int SenderId, string DataHost, int DataPort) : IDistTrainMessage
    {
        /// <summary>The key this shard's sender id proves itself with to the worker's listener (the worker's listener key's PeerKey).</summary>
        public byte[] Key { get; init; } = [];

        public override string ToString() =>
            $"WorkerEndpoint {{ WorkerId = {WorkerId}, SenderId = {SenderId}, DataHost = {DataHost}, DataPort = {DataPort}, Key = ({Key.Length} bytes, not shown) }}";
    }

    /// <summary>Coordinator → PS shard: the worker left; close its connection.</summary>
    public sealed record WorkerGone(string WorkerId) : IDistTrainMessage;

    /// <summary>Coordinator → PS shard: <paramref name="FromWorker"/>'s lease on (step, micro-batch) ran out and the work went to
    /// another worker; a frame of it that <paramref name="FromWorker"/> left half-sent must not hold the micro-batch's slot.</summary>
    public sealed record LeaseMoved(long Step, int MicroBatch, string FromWorker) : IDistTrainMessage;


    /// <summary>
    /// Coordinator → PS shard, at a step boundary: send your range at <paramref name="Version"/> (parameters, each optimizer
    /// state buffer, and on shard 0 the running-statistics buffers) to this data-plane endpoint, for a checkpoint.
    /// </summary>
    public sealed record SendCheckpoint(string DataHost, int DataPort, long Version) : IDistTrainMessage;

    /// <summary>PS shard → Coordinator: the checkpoint state the coordinator sent over the data plane is in place at <paramref name="Version"/>.</summary>
    public sealed record ShardRestored(int Shard, long Version) : IDistTrainMessage;

    /// <summary>
    /// PS shard → a coordinator that took over (the singleton moved after the old one's node died): "I hold range
    /// [Offset, Offset+Length) as shard <paramref name="Shard"/> of job <paramref name="JobId"/>, at <paramref name="Version"/>,
    /// with copies of my state at <paramref name="Kept"/>". Sent every second until the coordinator answers RollBack.
    /// </summary>
    public sealed record RejoinShard(string JobId, int Shard, long Offset, int Length, string OwnerAddress, string DataHost, int DataPort,
        long Version, long[] Kept, int ProtocolVersion) : IDistTrainMessage;

    /// <summary>Coordinator that took over → PS shard: put back your state of <paramref name="Version"/> (your current one or a
    /// copy you kept), forget the workers you push to, and answer ShardRestored.</summary>
    public sealed record RollBack(long Version) : IDistTrainMessage;

    /// <summary>
    /// Coordinator → the standby actor of every other coordinator-eligible node: what a coordinator that takes over needs
    /// and cannot learn from the shards (the job's id and data-plane job key, which only coordinator-eligible nodes hold), and where the coordinator's data-plane listener
    /// is, so the standby sees its process die at once. <paramref name="Finished"/>: the run is over; the standby exits.
    /// </summary>
    public sealed record StandbyState(string JobId, byte[] DataKey, string DataHost, int DataPort, bool Finished) : IDistTrainMessage
    {
        public override string ToString() =>
            $"StandbyState {{ JobId = {JobId}, DataKey = ({DataKey.Length} bytes, not shown), DataHost = {DataHost}, DataPort = {DataPort}, Finished = {Finished} }}";
    }

    /// <summary>Coordinator → CLI / test (same process): the run finished; where the model went.</summary>
    public sealed record RunCompleted(long Steps, string? ModelPath, double TestAccuracy, double TestLoss, string? Error) : IDistTrainMessage;
}
