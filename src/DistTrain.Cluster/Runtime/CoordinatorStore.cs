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

    private readonly Action<string> _failed;

    /// <param name="collected">Called (on a data-plane thread) when every shard's state of a version has arrived.</param>
    /// <param name="failed">Called (on another thread) with what went wrong when a restore could not be sent.</param>
    public CoordinatorStore(TrainJob job, int trainCount, int parameterCount, CoordinatorSettings settings, Action<long> collected, Action<string>? failed = null)
    {
        (_job, _settings, _failed) = (job, settings, failed ?? (_ => { }));
        _stepsPerEpoch = DistTrain.Data.Plans.EpochPlan.CountSteps(trainCount, job.BatchSize);
        _checkpoints = new CoordinatorCheckpoints(job, KeyRanges.Split(parameterCount, settings.Shards), settings.Endpoints, collected,
            mode: settings.Mode)
        {
            DropFrame = settings.Faults is { } faults ? faults.DropCheckpointFrame : null,
            RunMetadata = settings.Mode.Metadata(),
        };
    }

    /// <summary>The job's data-plane keys (CoordinatorCore.Keys): the coordinator's listener and restore connections use them.</summary>
    public void UseKeys(JobKeys keys) => _checkpoints.UseKeys(keys);

    public void ShardAssigned(int shard, int senderId) => _checkpoints.ShardAssigned(shard, senderId);

    /// <summary>This coordinator's data-plane listener (CoordinatorCheckpoints.Listener).</summary>
    public (string Host, int Port) Listener() => _checkpoints.Listener();

    public SendCheckpoint Begin(long version) => _checkpoints.Begin(version);
    public SendCheckpoint Ask(long version) => _checkpoints.Ask(version);
    public void Release(long version) => _checkpoints.Release(version);
    public string WriteCheckpoint(long version) => _checkpoints.Write(_settings.OutDir, _stepsPerEpoch, version, FirstStepOf(version));

    /// <summary>The plan step a version begins: async versions count micro-batches applied (a checkpoint's are at a step's start).</summary>
    private long FirstStepOf(long version)
    {
        if (_settings.Mode.Mode != TrainingMode.Async) return _settings.Mode.FirstStepOf(version);
        int micro = _job.MicroBatch <= 0 ? _job.BatchSize : _job.MicroBatch;
        return version / ((_job.BatchSize + micro - 1) / micro);
    }

    public RunCompleted WriteModel(long version, long steps, StepLog log)
    {
        var (values, buffers) = _checkpoints.Collected(version);
        return ModelOutput.SaveAndEvaluate(_job, values, steps, _settings.OutDir, log, buffers, _settings.Mode.Metadata(),
            _checkpoints.CollectedState(version), _checkpoints.OptimizerDescription);
    }

    /// <summary>Sends on a thread of its own: the coordinator goes on (a spare's assignment, the other shards' restores) while the
    /// bytes travel; a failure comes back through the failed callback.</summary>
    public void SendRestore(long version, ShardInfo shard)
    {
        var start = _settings.Resume?.Step == version ? _settings.Resume : version == 0 && _settings.Resume is null ? _checkpoints.InitialPoint() : null;
        var point = start ?? _checkpoints.PointOf(version);
        Task.Run(() =>
        {
            try { _checkpoints.SendRestore(point, shard); }
            catch (IOException e) { _failed($"Cannot send PS shard {shard.Shard} its state of step {version}: {e.Message}"); }
        });
    }

    public void Dispose() => _checkpoints.Dispose();
}
