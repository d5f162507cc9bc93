// Messages of the parameter-server shards: the shard layout, version publication and gradient receipts. Tensor bytes never travel in these; they go over the data plane (DataPlane/).
namespace DistTrain.Cluster.Messages;

public static class ParameterServerMessages
{
    /// <summary>One shard: the key range [Offset, Offset+Length) of the flat parameter vector, its owner and data-plane endpoint.</summary>
    public sealed record ShardInfo(int Shard, long Offset, int Length, string OwnerAddress, string DataHost, int DataPort) : IDistTrainMessage
    {
        /// <summary>In the layout a worker gets (RegisterAccepted): the key its sender id proves itself with to this shard's listener,
        /// and that this shard proves itself with to the worker's (DataPlaneKey.PeerKey); empty everywhere else.</summary>
        public byte[] Key { get; init; } = [];

        public override string ToString() =>
            $"ShardInfo {{ Shard = {Shard}, Offset = {Offset}, Length = {Length}, OwnerAddress = {OwnerAddress}, DataHost = {DataHost}, DataPort = {DataPort}, " +
            $"Key = ({Key.Length} bytes, not shown) }}";
    }

    /// <summary>All shards, in key order; they tile [0, ParameterCount) without gaps.</summary>
    public sealed record ShardLayout(long ParameterCount, ShardInfo[] Shards) : IDistTrainMessage
    {
        public override string ToString() =>
            $"ShardLayout(parameters={ParameterCount}, shards=[{string.Join(", ", Shards.Select(s => $"{s.Shard}:{s.Offset}+{s.Length}@{s.DataHost}:{s.DataPort}"))}])";

        /// <summary>Null when the shards, in key order, tile [0, ParameterCount) without a gap or an overlap; else what is wrong, naming the ranges.</summary>
        public string? TilingError()
        {
            long next = 0;
            for (int i = 0; i < Shards.Length; i++)
            {
                var s = Shards[i];
                if (s is null) return $"shard {i} has no owner yet";
                if (s.Shard != i) return $"shard at position {i} says it is shard {s.Shard}";
                if (s.Length < 0 || s.Offset != next)
                    return $"shard {i} owns [{s.Offset}, {s.Offset + s.Length}) but the ranges must continue at {next}: " + Ranges();
                next = s.Offset + s.Length;
            }
            return next == ParameterCount ? null : $"the ranges end at {next}, not at the parameter count {ParameterCount}: " + Ranges();
        }

        private string Ranges() => string.Join(", ", Shards.Select((s, i) => s is null ? $"{i}: none" : $"{i}: [{s.Offset}, {s.Offset + s.Length})"));
    }

    /// <summary>PS shard → Coordinator: the shard is up, owns this range and listens for data-plane frames at DataHost:DataPort.</summary>
    public sealed record RegisterShard(int Shard, long Offset, int Length, string OwnerAddress, string DataHost, int DataPort, int ProtocolVersion)
        : IDistTrainMessage;

    /// <summary>PS shard → Coordinator: a new version of the shard's range exists (after the step's update; workers get the values as frames).</summary>
    public sealed record VersionPublished(int Shard, long Version, long Step) : IDistTrainMessage;

    /// <summary>
    /// PS shard → Coordinator, sync with --clip-norm: the step's sum over this shard's range is complete; its exact Σ g²
    /// (ExactSquareSum digits) so the coordinator can form the global norm, which no single shard sees.
    /// </summary>
    public sealed record NormShare(int Shard, long Step, uint[] Digits) : IDistTrainMessage
    {
        public override string ToString() => $"NormShare(shard={Shard}, step={Step}, digits=[{Digits.Length}])";
    }

    /// <summary>Coordinator → every PS shard: the global gradient norm of <paramref name="Step"/>; clip with it and apply.</summary>
    public sealed record ApplyClipped(long Step, double GlobalNorm) : IDistTrainMessage;

    /// <summary>PS shard → Coordinator: the gradient of (step, micro-batch) for this shard arrived intact and was kept.</summary>
    public sealed record GradientAccepted(int Shard, string WorkerId, long Step, int MicroBatch) : IDistTrainMessage;

    /// <summary>
    /// PS shard → Coordinator, async mode: the gradient of (step, micro-batch) was applied as update <paramref name="Version"/>
    /// (the shard's version after it), <paramref name="Staleness"/> versions after the one it was computed on.
    /// </summary>
    public sealed record AsyncApplied(int Shard, long Step, int MicroBatch, long Version, long Staleness) : IDistTrainMessage;

    /// <summary>PS shard → Coordinator: a gradient frame was dropped (wrong length, unknown step, duplicate); never applied.</summary>
    public sealed record GradientRejected(int Shard, string WorkerId, long Step, int MicroBatch, string Reason) : IDistTrainMessage;

    /// <summary>
    /// PS shard → Coordinator, the determinism audit: two copies of the gradient chunk of (step, micro-batch) at
    /// <paramref name="Offset"/> have different checksums although the computation is bit-reproducible — silent data
    /// corruption or a faulty host. The copy of <paramref name="KeptSender"/> was kept; <paramref name="OtherSender"/>'s dropped.
    /// </summary>
    public sealed record GradientMismatch(int Shard, int KeptSender, int OtherSender, long Step, int MicroBatch, long Offset) : IDistTrainMessage;

    /// <summary>PS shard → Coordinator: a data-plane connection from the sender <paramref name="SenderId"/> ended (closed, reset or
    /// failed). A worker process that dies is seen here first, long before Akka's failure detector and downing.</summary>
    public sealed record PeerConnectionLost(int Shard, int SenderId) : IDistTrainMessage;


}
