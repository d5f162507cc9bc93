// Marker for every control-plane message that crosses a process boundary; the HOCON binding of
// this interface selects our Hyperion serializer (Serialization/HyperionSerializer.cs).
namespace DistTrain.Cluster.Messages;

/// <summary>Marks a message (or a value carried inside one) as ours: bound to the DistTrain serializer and on its allow-list.</summary>
public interface IDistTrainMessage;

/// <summary>Version of the wire protocol (control messages and data-plane frames). Bump on any incompatible change.</summary>
public static class WireProtocol
{
    public const int Version = 8; // 2: Hyperparameters.Augment; 3: Hyperparameters.ClipNorm, NormShare / ApplyClipped; 4: JobDescription.DataKey, the authenticated data plane; 5: Hyperparameters.Compression, compressed gradient frames; 6: Hyperparameters.OuterOptimizer, OuterLr, OuterMomentum (a shard of an older build would average plainly); 7: RejoinShard, RollBack, StandbyState (a standby coordinator); 8: pairwise data-plane keys (DataPlaneKey.ListenerKey / PeerKey: JobDescription.DataKey is the recipient's listener key, ShardInfo.Key, WorkerEndpoint.Key, ShardAssignment.CoordinatorKey)
}
