// Faults a test injects into a coordinator to prove recovery paths (a crash between checkpoints, a lost
// checkpoint frame). Production passes none; no setting or flag reaches these.
namespace DistTrain.Cluster.Runtime;

public interface ICoordinatorFaults
{
    /// <summary>Called after each applied step: true stops the coordinator abruptly there (no output), as if its process died.</summary>
    bool CrashAfter(long step);

    /// <summary>Called for each incoming checkpoint frame (on a data-plane thread): true drops it, as if the shard's send had failed.</summary>
    bool DropCheckpointFrame();
}
