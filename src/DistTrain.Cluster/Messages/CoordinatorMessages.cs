// Messages between workers and the Coordinator singleton: joining (job hand-out, registration),
// pulling work, reporting finished micro-batches. Arrays only (never IReadOnlyList with a collection
// expression: the generated type is not on the serializer's allow-list).
namespace DistTrain.Cluster.Messages;

/// <summary>Training modes of DESIGN.md contract 5.</summary>
public enum TrainingMode
{
    Sync = 0,
    Async = 1,
    LocalSgd = 2,
}

public static class CoordinatorMessages
{
    /// <summary>Worker → Coordinator: "give me the job". Answered by <see cref="JobDescription"/> or <see cref="RegisterRejected"/>.</summary>
    public sealed record RequestJob(string WorkerId, int ProtocolVersion) : IDistTrainMessage;

    /// <summary>
    /// Worker → Coordinator after it built the model of the job: its data-plane endpoint and the hash of the model
    /// spec as it built it. Answered by <see cref="RegisterAccepted"/> or <see cref="RegisterRejected"/>.
    /// </summary>
    public sealed record RegisterWorker(
        string WorkerId, string NodeAddress, string DataHost, int DataPort, int ProtocolVersion, string SpecHash) : IDistTrainMessage;

    /// <summary>Coordinator → worker: registration refused; <paramref name="Reason"/> says which field differs and what to do.</summary>
    public sealed record RegisterRejected(string WorkerId, string Reason) : IDistTrainMessage;

    /// <summary>Coordinator → worker: registered; where the shards are and which parameter version is current.</summary>
    public sealed record RegisterAccepted(string WorkerId, ParameterServerMessages.ShardLayout Layout, long CurrentVersion) : IDistTrainMessage;

    /// <summary>
    /// Which dataset the worker reads from its own disk (no data ships, only this): <paramref name="Spec"/> is the text form
    /// of DistTrain.Data.DatasetSpec (e.g. "fashion-mnist", "idx:DIR"); the fingerprint (Dataset.Fingerprint(), SHA-256)
    /// lets a worker refuse a copy that differs from the coordinator's.
    /// </summary>
    public sealed record DatasetInfo(string Spec, int TrainSamples, int TestSamples, string TrainFingerprint) : IDistTrainMessage;

    /// <summary>Optimizer and its hyper-parameters; <paramref name="Name"/> is "sgd", "momentum", "adam" or "adamw".</summary>
    public sealed record OptimizerSpec(
        string Name, float LearningRate, float Momentum, float Beta1, float Beta2, float Epsilon, float WeightDecay) : IDistTrainMessage;

    /// <summary>Everything that, with the model spec and the data, determines the weights after step t (DESIGN.md contract 2).
    /// <paramref name="Augment"/> is the training-time image augmentation (ImageAugmentation text form, "none" = off).</summary>
    public sealed record Hyperparameters(
        OptimizerSpec Optimizer,
        string Schedule,
        int WarmupSteps,
        int BatchSize,
        int MicroBatchSize,
        long Seed,
        int Epochs,
        TrainingMode Mode,
        int Staleness,
        int LocalSteps,
        long MaxSteps,
        string Augment,
        float ClipNorm) : IDistTrainMessage
    {
        /// <summary>Gradient compression on the data plane (GradientCodec): "none", "bf16", "fp16" or "int8"; sync mode only.</summary>
        public string Compression { get; init; } = "none";

        /// <summary>Local-sgd's outer optimizer on the round's averaged delta (OuterOptimizer): "average", "sgd" or "nesterov".</summary>
        public string OuterOptimizer { get; init; } = "average";
        public float OuterLr { get; init; } = 1f;
        public float OuterMomentum { get; init; }
    }

    /// <summary>Coordinator → worker: the job. A worker builds the model from <paramref name="SpecJson"/> and registers with its hash.</summary>
    public sealed record JobDescription(
        string JobId, string SpecJson, string SpecHash, int ParameterCount, DatasetInfo Dataset, Hyperparameters Hyper) : IDistTrainMessage
    {
        /// <summary>
        /// The recipient's data-plane listener key (DataPlaneKey.ListenerKey of its sender id, derived from the job key that only
        /// the coordinator holds): each worker gets its own copy of this message in answer to RequestJob, each shard inside its
        /// ShardAssignment. It travels over Akka remoting, which is mutually authenticated TLS between machines; it is never
        /// printed (ToString) nor checkpointed. Empty in the coordinator's own copy.
        /// </summary>
        public byte[] DataKey { get; init; } = [];

        public override string ToString() =>
            $"JobDescription {{ JobId = {JobId}, SpecJson = {SpecJson}, SpecHash = {SpecHash}, ParameterCount = {ParameterCount}, " +
            $"Dataset = {Dataset}, Hyper = {Hyper}, DataKey = ({DataKey.Length} bytes, not shown) }}";
    }

    /// <summary>Worker → Coordinator: "next micro-batch please"; <paramref name="LastVersion"/> is the parameter version it holds.</summary>
    public sealed record RequestWork(string WorkerId, long LastVersion) : IDistTrainMessage;

    /// <summary>
    /// Coordinator → worker: compute micro-batch <paramref name="MicroBatch"/> of <paramref name="MicroBatchCount"/> in
    /// <paramref name="Step"/> on parameters of exactly <paramref name="Version"/>. Sample indices follow from the seeded epoch plan.
    /// </summary>
    public sealed record WorkAssignment(long Epoch, long Step, int MicroBatch, int MicroBatchCount, long Version) : IDistTrainMessage;


    /// <summary>Coordinator → everyone: training finished (or stopped, with a reason).</summary>
    public sealed record TrainingDone(long FinalStep, long FinalVersion, string? Reason) : IDistTrainMessage;

    /// <summary>Worker → Coordinator: a micro-batch gradient was computed and pushed to every shard, with its timing breakdown.</summary>
    public sealed record MicroBatchDone(
        string WorkerId,
        long Step,
        int MicroBatch,
        double Loss,
        int SampleCount,
        int Correct,
        double ComputeMs,
        double CommunicationMs,
        double WaitMs,
        long BytesSent) : IDistTrainMessage;


}
