// What a control message must hold before a role's core sees it (DESIGN contract 9): no null where the record needs a
// value, no negative step, version, length or offset, a shard index inside the layout, a key range inside the parameter
// vector, a port a socket can have, finite hyper-parameters. A core that met such a message could throw half-way
// (leaving its state half-changed) or act on nonsense; a refused message is counted and dropped instead
// (Runtime/MessageGate), and the role goes on with the state it has. Pure: tested without an ActorSystem.
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;
using static DistTrain.Cluster.Messages.RuntimeMessages;

namespace DistTrain.Cluster.Messages;

/// <summary>What a role knows of the run's shape; 0 = not known yet (that bound is not checked).</summary>
public readonly record struct MessageBounds(int Shards, long Parameters)
{
    /// <summary>More shards than this is a malformed layout whatever the run (a shard owns at least one parameter and a port).</summary>
    public const int MaxShards = 65_536;
}

public static class MessageValidation
{
    /// <summary>Null when <paramref name="message"/> is well-formed within <paramref name="bounds"/>, else what is wrong with it.</summary>
    public static string? Problem(object message, MessageBounds bounds = default)
    {
        var c = new Check(bounds);
        switch (message)
        {
            case RequestJob m: c.Text(m.WorkerId, "WorkerId"); break;
            case RegisterWorker m:
                c.Text(m.WorkerId, "WorkerId"); c.Text(m.NodeAddress, "NodeAddress"); c.Text(m.DataHost, "DataHost");
                c.Port(m.DataPort, "DataPort"); c.Text(m.SpecHash, "SpecHash");
                break;
            case RegisterRejected m: c.Text(m.WorkerId, "WorkerId"); c.Text(m.Reason, "Reason"); break;
            case RegisterAccepted m:
                c.Text(m.WorkerId, "WorkerId"); c.Layout(m.Layout, "Layout"); c.AtLeast(m.CurrentVersion, -1, "CurrentVersion");
                // A worker's layout names its key toward every shard: without one it could not reach that shard.
                if (c.Ok) for (int i = 0; i < m.Layout.Shards.Length; i++) if (m.Layout.Shards[i] is { } s) c.Key(s.Key, $"Layout.Shards[{i}].Key");
                break;
            case DatasetInfo m: c.Dataset(m, "DatasetInfo"); break;
            case OptimizerSpec m: c.Optimizer(m, "OptimizerSpec"); break;
            case Hyperparameters m: c.Hyper(m, "Hyperparameters"); break;
            case JobDescription m: c.Job(m, "JobDescription"); c.Key(m.DataKey, "JobDescription.DataKey"); break; // a worker's copy: its listener key
            case RequestWork m: c.Text(m.WorkerId, "WorkerId"); c.AtLeast(m.LastVersion, -1, "LastVersion"); break;
            case WorkAssignment m:
                c.AtLeast(m.Epoch, 0, "Epoch"); c.AtLeast(m.Step, 0, "Step"); c.AtLeast(m.Version, 0, "Version");
                c.AtLeast(m.MicroBatchCount, 1, "MicroBatchCount"); c.Index(m.MicroBatch, m.MicroBatchCount, "MicroBatch");
                break;
            case TrainingDone m: c.AtLeast(m.FinalStep, 0, "FinalStep"); c.AtLeast(m.FinalVersion, 0, "FinalVersion"); break;
            case MicroBatchDone m:
                c.Text(m.WorkerId, "WorkerId"); c.AtLeast(m.Step, 0, "Step"); c.AtLeast(m.MicroBatch, 0, "MicroBatch");
                c.AtLeast(m.SampleCount, 0, "SampleCount"); c.Index(m.Correct, m.SampleCount + 1, "Correct");
                c.NotNegative(m.ComputeMs, "ComputeMs"); c.NotNegative(m.CommunicationMs, "CommunicationMs"); c.NotNegative(m.WaitMs, "WaitMs");
                c.AtLeast(m.BytesSent, 0, "BytesSent");
                break;
            case ShardInfo m: c.Shard(m, "ShardInfo"); break;
            case ShardLayout m: c.Layout(m, "ShardLayout"); break;
            case RegisterShard m:
                c.Shard(m.Shard, "Shard"); c.Range(m.Offset, m.Length, "Offset/Length"); c.Text(m.OwnerAddress, "OwnerAddress");
                c.Text(m.DataHost, "DataHost"); c.Port(m.DataPort, "DataPort");
                break;
            case VersionPublished m: c.Shard(m.Shard, "Shard"); c.AtLeast(m.Version, 0, "Version"); c.AtLeast(m.Step, -1, "Step"); break; // step -1: the initial version
            case NormShare m:
                c.Shard(m.Shard, "Shard"); c.AtLeast(m.Step, 0, "Step");
                if (c.NotNull(m.Digits, "Digits") && m.Digits.Length > 1024) c.Fail($"Digits has {m.Digits.Length} entries (an exact square sum has a few dozen)");
                break;
            case ApplyClipped m: c.AtLeast(m.Step, 0, "Step"); c.NotNegative(m.GlobalNorm, "GlobalNorm"); break;
            case GradientAccepted m: c.Shard(m.Shard, "Shard"); c.Text(m.WorkerId, "WorkerId"); c.AtLeast(m.Step, 0, "Step"); c.AtLeast(m.MicroBatch, 0, "MicroBatch"); break;
            case AsyncApplied m:
                c.Shard(m.Shard, "Shard"); c.AtLeast(m.Step, 0, "Step"); c.AtLeast(m.MicroBatch, 0, "MicroBatch"); c.AtLeast(m.Version, 0, "Version");
                c.AtLeast(m.Staleness, 0, "Staleness");
                break;
            // A shard reports what it dropped as the frame said it (a stranger's frame may name any step): only the shard is checked.
            case GradientRejected m: c.Shard(m.Shard, "Shard"); c.Text(m.WorkerId, "WorkerId"); c.Text(m.Reason, "Reason"); break;
            case GradientMismatch m: c.Shard(m.Shard, "Shard"); c.AtLeast(m.Step, 0, "Step"); c.AtLeast(m.MicroBatch, 0, "MicroBatch"); c.AtLeast(m.Offset, 0, "Offset"); break;
            case PeerConnectionLost m: c.Shard(m.Shard, "Shard"); break;
            case RequestShard m: c.Text(m.NodeId, "NodeId"); break;
            case ShardAssignment m:
                c.AtLeast(m.ShardCount, 1, "ShardCount");
                c.Index(m.Shard, Math.Min(m.ShardCount, MessageBounds.MaxShards), "Shard");
                if (c.NotNull(m.Job, "Job")) c.Job(m.Job, "Job");
                if (c.Ok)
                {
                    var range = new Check(bounds with { Parameters = m.Job.ParameterCount }); // the job it carries sizes the range
                    range.Range(m.Offset, m.Length, "Offset/Length");
                    if (range.Problem is { } p) c.Fail(p);
                    c.Key(m.Job.DataKey, "Job.DataKey"); // the shard's listener key
                    c.Key(m.CoordinatorKey, "CoordinatorKey");
                }
                break;
            case ShardStandby m: c.Text(m.Reason, "Reason"); break;
            case WorkerEndpoint m: c.Text(m.WorkerId, "WorkerId"); c.Text(m.DataHost, "DataHost"); c.Port(m.DataPort, "DataPort"); c.Key(m.Key, "Key"); break;
            case WorkerGone m: c.Text(m.WorkerId, "WorkerId"); break;
            case LeaseMoved m: c.AtLeast(m.Step, 0, "Step"); c.AtLeast(m.MicroBatch, 0, "MicroBatch"); c.Text(m.FromWorker, "FromWorker"); break;
            case SendCheckpoint m: c.Text(m.DataHost, "DataHost"); c.Port(m.DataPort, "DataPort"); c.AtLeast(m.Version, 0, "Version"); break;
            case ShardRestored m: c.Shard(m.Shard, "Shard"); c.AtLeast(m.Version, 0, "Version"); break;
            case RunCompleted m: c.AtLeast(m.Steps, -1, "Steps"); break;
            case RejoinShard m:
                c.Text(m.JobId, "JobId"); c.Shard(m.Shard, "Shard"); c.Range(m.Offset, m.Length, "Offset/Length"); c.Text(m.OwnerAddress, "OwnerAddress");
                c.Text(m.DataHost, "DataHost"); c.Port(m.DataPort, "DataPort"); c.AtLeast(m.Version, 0, "Version");
                if (m.Kept is null) c.Text(null, "Kept");
                else foreach (long v in m.Kept) c.AtLeast(v, 0, "Kept");
                break;
            case RollBack m: c.AtLeast(m.Version, 0, "Version"); break;
            case StandbyState m:
                c.Text(m.JobId, "JobId"); c.Text(m.DataHost, "DataHost"); c.Port(m.DataPort, "DataPort");
                c.Key(m.DataKey, "DataKey");
                break;
            case SweepMessages.RunnerReady m: c.Text(m.RunnerId, "RunnerId"); break;
            case SweepMessages.TrialRequest m:
                c.AtLeast(m.Attempt, 1, "Attempt"); c.AtLeast(m.Trial, 0, "Trial"); c.AtLeast(m.Rung, 0, "Rung"); c.AtLeast(m.MaxResultBytes, 0, "MaxResultBytes");
                c.Text(m.TrainFingerprint, "TrainFingerprint");
                if (c.NotNull(m.Arguments, "Arguments"))
                    foreach (var a in m.Arguments) c.Text(a, "Arguments[]");
                break;
            case SweepMessages.TrialRefused m: c.AtLeast(m.Attempt, 1, "Attempt"); c.Text(m.Reason, "Reason"); break;
            case SweepMessages.TrialLog m:
                c.AtLeast(m.Attempt, 1, "Attempt");
                if (c.NotNull(m.Lines, "Lines"))
                    foreach (var l in m.Lines) c.Text(l, "Lines[]");
                break;
            case SweepMessages.TrialFile m:
                c.AtLeast(m.Attempt, 1, "Attempt"); c.Text(m.Path, "Path"); c.AtLeast(m.Offset, 0, "Offset"); c.AtLeast(m.Length, 0, "Length");
                if (c.NotNull(m.Data, "Data") && m.Offset + m.Data.Length > m.Length) c.Fail($"Data ends at {m.Offset + m.Data.Length}, beyond the file's {m.Length} bytes");
                break;
            case SweepMessages.TrialFinished m:
                c.AtLeast(m.Attempt, 1, "Attempt"); c.Text(m.LastError, "LastError"); c.NotNegative(m.Seconds, "Seconds");
                c.AtLeast(m.Files, 0, "Files"); c.AtLeast(m.Bytes, 0, "Bytes");
                break;
            case SweepMessages.SweepFinished m: c.Text(m.Reason, "Reason"); break;
            case null: return "the message is null";
        }
        return c.Problem is null ? null : $"{message.GetType().Name}: {c.Problem}";
    }

    /// <summary>
    /// The worker or shard id a node says is its own in <paramref name="message"/>, or null. Such ids start with the node's Akka
    /// address (ClusterNode names them "{address}/w0", "{address}/ps0"), and the coordinator hands the data-plane keys of an id
    /// to whoever registers it: so a remote sender may only name ids under its own address (<see cref="OwnsId"/>).
    /// </summary>
    public static string? ClaimedId(object message) => message switch
    {
        RequestJob m => m.WorkerId,
        RegisterWorker m => m.WorkerId,
        RequestWork m => m.WorkerId,
        MicroBatchDone m => m.WorkerId,
        RequestShard m => m.NodeId,
        RegisterShard m => m.OwnerAddress,
        RejoinShard m => m.OwnerAddress,
        _ => null,
    };

    /// <summary>Whether the node at <paramref name="senderAddress"/> (an Akka address, "akka.tcp://system@host:port") may name
    /// <paramref name="id"/> as its own: the id lies under that address.</summary>
    public static bool OwnsId(string senderAddress, string id) =>
        id.Length > senderAddress.Length && id.StartsWith(senderAddress, StringComparison.Ordinal) && id[senderAddress.Length] == '/';

    /// <summary>The bounds <paramref name="message"/> teaches a role that admitted it (its shard layout), else <paramref name="bounds"/>.</summary>
    public static MessageBounds Learn(object message, MessageBounds bounds) => message switch
    {
        ShardAssignment a => new MessageBounds(a.ShardCount, a.Job.ParameterCount),
        RegisterAccepted r => new MessageBounds(r.Layout.Shards.Length, r.Layout.ParameterCount),
        _ => bounds,
    };

    /// <summary>Collects the first problem; every check after it is skipped.</summary>
    private struct Check(MessageBounds bounds)
    {
        public string? Problem { get; private set; }
        public readonly bool Ok => Problem is null;
        private readonly MessageBounds _bounds = bounds;

        public void Fail(string why) => Problem ??= why;

        public bool NotNull(object? value, string name)
        {
            if (value is null) Fail($"{name} is null");
            return Ok;
        }

        public void Text(string? value, string name) => NotNull(value, name);

        /// <summary>A data-plane key (DataPlaneKey.Bytes long), which the recipient cannot do without.</summary>
        public void Key(byte[]? key, string name)
        {
            if (NotNull(key, name) && key!.Length != DataPlane.DataPlaneKey.Bytes)
                Fail($"{name} has {key.Length} bytes, not a {DataPlane.DataPlaneKey.Bytes}-byte data-plane key (a coordinator of another DistTrain version?)");
        }

        public void AtLeast(long value, long min, string name)
        {
            if (value < min) Fail($"{name} is {value}, below {min}");
        }

        public void NotNegative(double value, string name)
        {
            if (!double.IsFinite(value) || value < 0) Fail($"{name} is {value}, not a finite non-negative number");
        }

        public void Finite(float value, string name)
        {
            if (!float.IsFinite(value)) Fail($"{name} is {value}, not finite");
        }

        public void Index(long value, long count, string name)
        {
            if (value < 0 || value >= count) Fail($"{name} is {value}, outside [0, {count})");
        }

        public void Port(int value, string name)
        {
            if (value is < 0 or > 65535) Fail($"{name} is {value}, not a TCP port");
        }

        public void Shard(int shard, string name)
        {
            if (shard < 0 || shard >= (_bounds.Shards > 0 ? _bounds.Shards : MessageBounds.MaxShards))
                Fail($"{name} is {shard}, outside [0, {(_bounds.Shards > 0 ? _bounds.Shards : MessageBounds.MaxShards)})" + (_bounds.Shards > 0 ? $" (the run has {_bounds.Shards} shards)" : ""));
        }

        public void Range(long offset, int length, string name)
        {
            if (offset < 0 || length < 0) Fail($"{name} is [{offset}, {offset + length}), negative");
            else if (_bounds.Parameters > 0 && offset + length > _bounds.Parameters)
                Fail($"{name} is [{offset}, {offset + length}), beyond the {_bounds.Parameters} parameters");
        }

        public void Shard(ShardInfo s, string name)
        {
            Shard(s.Shard, name + ".Shard");
            Range(s.Offset, s.Length, name + ".Offset/Length");
            Text(s.OwnerAddress, name + ".OwnerAddress");
            Text(s.DataHost, name + ".DataHost");
            Port(s.DataPort, name + ".DataPort");
            NotNull(s.Key, name + ".Key");
        }

        public void Layout(ShardLayout? layout, string name)
        {
            if (!NotNull(layout, name) || !NotNull(layout!.Shards, name + ".Shards")) return;
            AtLeast(layout.ParameterCount, 0, name + ".ParameterCount");
            if (layout.Shards.Length > MessageBounds.MaxShards) Fail($"{name} has {layout.Shards.Length} shards (at most {MessageBounds.MaxShards})");
            // A layout defines the run's shape, so its own counts bound its entries; a slot may be empty while a range has no owner.
            var inner = new Check(new MessageBounds(layout.Shards.Length, layout.ParameterCount));
            for (int i = 0; i < layout.Shards.Length && inner.Ok; i++)
                if (layout.Shards[i] is { } s) inner.Shard(s, $"{name}.Shards[{i}]");
            if (inner.Problem is { } p) Fail(p);
        }

        public void Dataset(DatasetInfo? d, string name)
        {
            if (!NotNull(d, name)) return;
            Text(d!.Spec, name + ".Spec"); AtLeast(d.TrainSamples, 0, name + ".TrainSamples"); AtLeast(d.TestSamples, 0, name + ".TestSamples");
            Text(d.TrainFingerprint, name + ".TrainFingerprint");
        }

        public void Optimizer(OptimizerSpec? o, string name)
        {
            if (!NotNull(o, name)) return;
            Text(o!.Name, name + ".Name");
            Finite(o.LearningRate, name + ".LearningRate"); Finite(o.Momentum, name + ".Momentum"); Finite(o.Beta1, name + ".Beta1");
            Finite(o.Beta2, name + ".Beta2"); Finite(o.Epsilon, name + ".Epsilon");
            if (float.IsInfinity(o.WeightDecay)) Fail($"{name}.WeightDecay is {o.WeightDecay}, not finite (NaN stands for the optimizer's default)");
        }

        public void Hyper(Hyperparameters? h, string name)
        {
            if (!NotNull(h, name)) return;
            Optimizer(h!.Optimizer, name + ".Optimizer");
            Text(h.Schedule, name + ".Schedule"); Text(h.Augment, name + ".Augment"); Text(h.Compression, name + ".Compression");
            AtLeast(h.WarmupSteps, 0, name + ".WarmupSteps"); AtLeast(h.BatchSize, 1, name + ".BatchSize");
            AtLeast(h.MicroBatchSize, 1, name + ".MicroBatchSize"); AtLeast(h.Epochs, 0, name + ".Epochs");
            AtLeast(h.Staleness, 0, name + ".Staleness"); AtLeast(h.LocalSteps, 0, name + ".LocalSteps"); AtLeast(h.MaxSteps, 0, name + ".MaxSteps");
            if (!Enum.IsDefined(h.Mode)) Fail($"{name}.Mode is {(int)h.Mode}, not a training mode");
            if (!float.IsFinite(h.ClipNorm) || h.ClipNorm < 0) Fail($"{name}.ClipNorm is {h.ClipNorm}, not a finite non-negative number");
        }

        public void Job(JobDescription? j, string name)
        {
            if (!NotNull(j, name)) return;
            Text(j!.JobId, name + ".JobId"); Text(j.SpecJson, name + ".SpecJson"); Text(j.SpecHash, name + ".SpecHash");
            AtLeast(j.ParameterCount, 1, name + ".ParameterCount");
            if (_bounds.Parameters > 0 && j.ParameterCount != _bounds.Parameters)
                Fail($"{name}.ParameterCount is {j.ParameterCount}, but the run has {_bounds.Parameters} parameters");
            NotNull(j.DataKey, name + ".DataKey");
            Dataset(j.Dataset, name + ".Dataset");
            Hyper(j.Hyper, name + ".Hyper");
        }
    }
}
