// Model and optimizer checkpoints on top of SafeTensors: every Param (buffers included, as in a PyTorch
// state_dict) under its state_dict name, with the model spec, step, epoch and seed in the metadata;
// optimizer state beside it in `<stem>.optimizer.safetensors` with t. Loads check names and shapes first
// and copy nothing unless everything matches.
using System.Globalization;
using DistTrain.Nn.Optimizers;
using DistTrain.Tensors;

namespace DistTrain.Nn.Checkpoints;

/// <summary>What a checkpoint records about the run besides the weights.</summary>
public sealed record CheckpointInfo(string ModelSpec, long Step, int Epoch, long Seed)
{
    /// <summary>Every other metadata entry of the file.</summary>
    public IReadOnlyDictionary<string, string> Extra { get; init; } = new Dictionary<string, string>();
}

public static class Checkpoint
{
    public const string ModelSpecKey = "model_spec", StepKey = "step", EpochKey = "epoch", SeedKey = "seed";
    public const string FormatKey = "format", OptimizerKey = "optimizer", OptimizerStepKey = "t";
    private static readonly string[] Reserved = [ModelSpecKey, StepKey, EpochKey, SeedKey, FormatKey];

    /// <summary>`dir/model.safetensors` -> `dir/model.optimizer.safetensors`.</summary>
    public static string OptimizerPathFor(string weightsPath) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weightsPath))!, Path.GetFileNameWithoutExtension(weightsPath) + ".optimizer.safetensors");

    /// <summary>Writes every parameter and buffer of <paramref name="store"/> in model order, atomically, with a manifest.</summary>
    public static void Save(string path, ParameterStore store, CheckpointInfo info)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(info);
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in info.Extra)
        {
            if (Reserved.Contains(kv.Key))
                throw new ArgumentException($"Checkpoint metadata key '{kv.Key}' is reserved; set it through CheckpointInfo.", nameof(info));
            meta[kv.Key] = kv.Value;
        }
        meta[FormatKey] = "pt"; // what safetensors.torch writes, so Python tools read it as a state_dict
        meta[ModelSpecKey] = info.ModelSpec;
        meta[StepKey] = info.Step.ToString(CultureInfo.InvariantCulture);
        meta[EpochKey] = info.Epoch.ToString(CultureInfo.InvariantCulture);
        meta[SeedKey] = info.Seed.ToString(CultureInfo.InvariantCulture);
        var tensors = store.All.Select(p => (NameOf(p), p.Shape, (ReadOnlyMemory<float>)p.Value.Buffer.AsMemory(p.Value.Offset, p.Length)));
        SafeTensors.Write(path, tensors, meta);
    }

    /// <summary>Loads a checkpoint into <paramref name="store"/>: every name and shape must match the
    /// model (missing, extra and mismatched names are all listed in one error); returns its metadata.</summary>
    public static CheckpointInfo LoadInto(ParameterStore store, string path)
    {
        ArgumentNullException.ThrowIfNull(store);
        var file = SafeTensors.Read(path);
        var problems = new List<string>();
        var model = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in store.All)
        {
            var name = NameOf(p);
            model.Add(name);
            if (!file.TryGet(name, out var t)) problems.Add($"missing '{name}' {Tensor.ShapeString(p.Shape)}");
            else if (!t.Shape.AsSpan().SequenceEqual(p.Shape))
                problems.Add($"'{name}' has shape {Tensor.ShapeString(t.Shape)} in the file but {Tensor.ShapeString(p.Shape)} in the model");
        }
        foreach (var t in file.Tensors)
            if (!model.Contains(t.Name)) problems.Add($"extra '{t.Name}' {Tensor.ShapeString(t.Shape)} (not in the model)");
        if (problems.Count > 0)
            throw new CheckpointException(path, "does not fit the model: " + string.Join("; ", problems) +
                ". Load it into the model it was saved from (see its model_spec metadata).");
        foreach (var p in store.All) file[NameOf(p)].Data.CopyTo(p.Value.Span);
        return InfoOf(file);
    }

    /// <summary>Reads the metadata of a checkpoint (validating the file) without a model.</summary>
    public static CheckpointInfo ReadInfo(string path) => InfoOf(SafeTensors.Read(path));

    /// <summary>Writes an optimizer's state buffers and its update count t beside the weights.</summary>
    public static void SaveOptimizer(string path, Optimizer optimizer, long t, IDictionary<string, string>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        SaveOptimizerState(path, optimizer.State, t, optimizer.ToString(), extra);
    }

    /// <summary>The same for state buffers gathered from several shards (one buffer per state name).</summary>
    public static void SaveOptimizerState(string path, IReadOnlyList<(string Name, float[] Data)> state, long t, string description,
        IDictionary<string, string>? extra = null)
    {
        var meta = extra is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(extra, StringComparer.Ordinal);
        meta[OptimizerKey] = description;
        meta[OptimizerStepKey] = t.ToString(CultureInfo.InvariantCulture);
        SafeTensors.Write(path, state.Select(s => (s.Name, new[] { s.Data.Length }, (ReadOnlyMemory<float>)s.Data)), meta);
    }

    /// <summary>Restores an optimizer's state; returns t, the number of updates it had made.</summary>
    public static long LoadOptimizerInto(Optimizer optimizer, string path)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        return LoadOptimizerState(optimizer.State, path, optimizer.ToString());
    }

    /// <summary>Restores named state buffers (names and lengths must match exactly); returns t.</summary>
    public static long LoadOptimizerState(IReadOnlyList<(string Name, float[] Data)> state, string path, string description = "the optimizer")
    {
        var file = SafeTensors.Read(path);
        var problems = new List<string>();
        foreach (var (name, data) in state)
        {
            if (!file.TryGet(name, out var t)) problems.Add($"missing state '{name}'");
            else if (t.Shape.Length != 1 || t.Shape[0] != data.Length)
                problems.Add($"state '{name}' has shape {Tensor.ShapeString(t.Shape)} in the file but ({data.Length}) is needed");
        }
        foreach (var t in file.Tensors)
            if (!state.Any(s => s.Name == t.Name)) problems.Add($"extra state '{t.Name}'");
        if (problems.Count > 0)
            throw new CheckpointException(path, $"does not fit {description}: {string.Join("; ", problems)} " +
                $"(the file was written by {file.Metadata.GetValueOrDefault(OptimizerKey, "an unknown optimizer")}).");
        var step = ParseLong(file, OptimizerStepKey);
        foreach (var (name, data) in state) file[name].Data.CopyTo(data, 0);
        return step;
    }

    private static string NameOf(Param p) => p.Name.Length > 0 ? p.Name
        : throw new ArgumentException($"Parameter {p.LocalName} {Tensor.ShapeString(p.Shape)} has no state_dict name; build the model before saving or loading.");

    private static CheckpointInfo InfoOf(SafeTensorsFile file)
    {
        var extra = file.Metadata.Where(kv => !Reserved.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        return new CheckpointInfo(
            file.Metadata.GetValueOrDefault(ModelSpecKey, ""),
            file.Metadata.ContainsKey(StepKey) ? ParseLong(file, StepKey) : 0,
            file.Metadata.ContainsKey(EpochKey) ? (int)ParseLong(file, EpochKey) : 0,
            file.Metadata.ContainsKey(SeedKey) ? ParseLong(file, SeedKey) : 0) { Extra = extra };
    }

    private static long ParseLong(SafeTensorsFile file, string key) =>
        file.Metadata.TryGetValue(key, out var s) && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v
        : throw new CheckpointException(file.Path, $"metadata '{key}' is missing or not an integer ('{file.Metadata.GetValueOrDefault(key)}').");
}
