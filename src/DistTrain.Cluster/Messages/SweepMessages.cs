// Messages of `disttrain sweep` over a cluster: a sweep node hands trials (the `disttrain train` arguments of one run,
// without paths or threads) to trial runners (`disttrain node --roles trial`), which run them as child processes and
// send back their output lines, their run folder's files in chunks under Akka's frame size, and how they ended.
// Every message is admitted only from a cluster member (Runtime/MessageGate) with the right role.
namespace DistTrain.Cluster.Messages;

public static class SweepMessages
{
    /// <summary>Largest file chunk in a <see cref="TrialFile"/>: with its header it stays under Akka's 128000-byte frame.</summary>
    public const int ChunkBytes = 64 * 1024;

    /// <summary>Runner → sweep: "I am idle" — on joining, and after each trial it finished or refused.</summary>
    public sealed record RunnerReady(string RunnerId, int ProtocolVersion) : IDistTrainMessage;

    /// <summary>
    /// Sweep → runner: train attempt <paramref name="Attempt"/> of trial <paramref name="Trial"/> (rung <paramref name="Rung"/>) with
    /// these `disttrain train` arguments (options only; the runner adds --threads 1 and its own --out), and send back at most
    /// <paramref name="MaxResultBytes"/> bytes of its run folder. <paramref name="TrainFingerprint"/>: the SHA-256 fingerprint of the
    /// training split at the sweep (DatasetOps.Fingerprint); a runner whose copy differs refuses (empty: not checked).
    /// </summary>
    public sealed record TrialRequest(long Attempt, int Trial, int Rung, string[] Arguments, long MaxResultBytes, int ProtocolVersion,
        string TrainFingerprint = "") : IDistTrainMessage;

    /// <summary>Runner → sweep: the request was not run, and why (an option that is not a train option, busy, another version).</summary>
    public sealed record TrialRefused(long Attempt, string Reason) : IDistTrainMessage;

    /// <summary>Runner → sweep: lines the trial's `disttrain train` printed (stdout and stderr, in order), for RUN/train.log.</summary>
    public sealed record TrialLog(long Attempt, string[] Lines) : IDistTrainMessage;

    /// <summary>Runner → sweep: bytes [Offset, Offset + Data.Length) of the run folder's file <paramref name="Path"/> (relative,
    /// '/'-separated) whose whole length is <paramref name="Length"/>.</summary>
    public sealed record TrialFile(long Attempt, string Path, long Offset, long Length, byte[] Data) : IDistTrainMessage
    {
        public override string ToString() => $"TrialFile {{ Attempt = {Attempt}, Path = {Path}, Offset = {Offset}, Length = {Length}, Data = {Data?.Length ?? 0} bytes }}";
    }

    /// <summary>Runner → sweep, after every TrialFile of the attempt: how the run ended (exit code, its last error line) and how
    /// many files and bytes were sent (the sweep checks it received exactly those).</summary>
    public sealed record TrialFinished(long Attempt, int ExitCode, string LastError, double Seconds, int Files, long Bytes) : IDistTrainMessage;

    /// <summary>Sweep → runner: the sweep is over (or cancelled); stop the running trial, leave the cluster and exit.</summary>
    public sealed record SweepFinished(string Reason) : IDistTrainMessage;
}
