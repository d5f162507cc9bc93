// The coordinator core's input and output (ICoordinatorStore): the shards' state collected over the data plane
// (CoordinatorCheckpoints), checkpoints and the final model written in the one-process format (ModelOutput), and
// a resumed checkpoint's slices sent to the shards.
using DistTrain.Cluster.Cores;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using DistTrain.Nn.Training;
using DistTrain.Training;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;
using DistTrain.Training.Steps;

namespace DistTrain.Cluster.Runtime;

public sealed class CoordinatorStore : ICoordinatorStore
{
    private readonly CoordinatorCheckpoints _checkpoints;
    private readonly CoordinatorSettings _settings;
    private readonly TrainJob _job;
    private readonly int _stepsPerEpoch;

    /// <param name="collected">Called (on a data-plane thread) when every shard's state of a version has arrived.</param>
    public CoordinatorStore(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings, Action<long> collected)
    {
        (_job, _settings) = (job, settings);
        _stepsPerEpoch = DistTrain.Data.Plans.EpochPlan.CountSteps(trainCount, job.BatchSize);
        _checkpoints = new CoordinatorCheckpoints(job, KeyRanges.Split(parameterCount, settings.Shards), settings.Endpoints, collected,
            optimizerState: settings.Mode.Mode != TrainingMode.LocalSgd)
        {
            DropFrame = settings.Faults is { } faults ? faults.DropCheckpointFrame : null,
            RunMetadata = settings.Mode.Metadata(),
        };
    }

    /// <summary>The job's data-plane key (JobDescription.DataKey): the coordinator's listener and restore connections use it.</summary>
    public void UseKey(DistTrain.Cluster.DataPlane.DataPlaneKey key) => _checkpoints.UseKey(key);

    public SendCheckpoint Begin(long version) => _checkpoints.Begin(version);
    public SendCheckpoint Ask(long version) => _checkpoints.Ask(version);
    public void Release(long version) => _checkpoints.Release(version);
    public string WriteCheckpoint(long version) => _checkpoints.Write(_settings.OutDir, _stepsPerEpoch, version);

    public RunCompleted WriteModel(long version, long steps, StepLog log)
    {
        var (values, buffers) = _checkpoints.Collected(version);
        return ModelOutput.SaveAndEvaluate(_job, values, steps, _settings.OutDir, log, buffers, _settings.Mode.Metadata(),
            _checkpoints.CollectedState(version), _checkpoints.OptimizerDescription);
    }

    public void SendRestore(long version, ShardInfo shard)
    {
        var start = _settings.Resume ?? _checkpoints.InitialPoint();
        _checkpoints.SendRestore(version == start.Step ? start : _checkpoints.PointOf(version), shard, JobMapping.SenderIdOf("coordinator"));
    }

    public void Dispose() => _checkpoints.Dispose();
}
