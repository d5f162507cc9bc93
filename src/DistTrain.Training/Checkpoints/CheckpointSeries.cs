// Mid-run checkpoints of a run folder (DESIGN contract 4): DIR/checkpoint/step-NNNNNNNNN/ holds
// model.safetensors (weights and buffers, metadata: spec, step, epoch, seed, job) and
// model.optimizer.safetensors — the one-process format. A checkpoint is written into a temporary
// folder and renamed into place, so a crash leaves either the whole checkpoint or none; every file has
// its SHA-256 manifest. Resume takes the newest checkpoint that verifies and says why it skipped others; a file
// without its manifest does not verify (integrity at rest) unless the caller allows unverified files explicitly.
using System.Globalization;
using System.Text.Json;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn;
using DistTrain.Nn.Models;
using DistTrain.Training;

namespace DistTrain.Training.Checkpoints;

/// <summary>A verified checkpoint to resume from: the weights, buffers and optimizer state at <see cref="Step"/>.</summary>
public sealed record ResumePoint(string Directory, long Step, int Epoch, float[] Values, float[] Buffers,
    IReadOnlyList<(string Name, float[] Data)> OptimizerState)
{
    public override string ToString() => $"checkpoint {Directory} (step {Step}, epoch {Epoch}, {Values.Length} parameters)";
}

public static class CheckpointSeries
{
    public const string FolderName = "checkpoint", WeightsFile = "model.safetensors";
    private const string Prefix = "step-";

    /// <summary>How many checkpoints stay on disk (the newest ones); the older ones are deleted after a write.</summary>
    public static int Keep { get; set; } = 2;

    public static string RootOf(string runDir) => Path.Combine(runDir, FolderName);

    /// <summary>Checkpoint folders of a run, newest first.</summary>
    public static IReadOnlyList<(long Step, string Dir)> List(string runDir)
    {
        var root = RootOf(runDir);
        if (!System.IO.Directory.Exists(root)) return [];
        return System.IO.Directory.GetDirectories(root, Prefix + "*")
            .Select(d => (Ok: long.TryParse(Path.GetFileName(d)[Prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var s), Step: s, Dir: d))
            .Where(x => x.Ok).OrderByDescending(x => x.Step).Select(x => (x.Step, x.Dir)).ToArray();
    }

    /// <summary>
    /// Writes the checkpoint of <paramref name="step"/> atomically (temporary folder, then rename) and prunes old ones.
    /// <paramref name="store"/> holds the weights and buffers; <paramref name="optimizerState"/> covers the whole flat vector.
    /// </summary>
    public static string Write(string runDir, TrainJob job, ParameterStore store, IReadOnlyList<(string Name, float[] Data)> optimizerState,
        string optimizerDescription, long step, int epoch, IReadOnlyDictionary<string, string>? runMetadata = null)
    {
        var root = RootOf(runDir);
        System.IO.Directory.CreateDirectory(root);
        var final = Path.Combine(root, string.Create(CultureInfo.InvariantCulture, $"{Prefix}{step:D9}"));
        var tmp = final + ".tmp";
        if (System.IO.Directory.Exists(tmp)) System.IO.Directory.Delete(tmp, true);
        System.IO.Directory.CreateDirectory(tmp);
        var weights = Path.Combine(tmp, WeightsFile);
        SaveWeights(weights, job, store, step, epoch, runMetadata);
        Checkpoint.SaveOptimizerState(Checkpoint.OptimizerPathFor(weights), optimizerState, step, optimizerDescription);
        if (System.IO.Directory.Exists(final)) System.IO.Directory.Delete(final, true);
        System.IO.Directory.Move(tmp, final);
        foreach (var (_, old) in List(runDir).Skip(Math.Max(1, Keep)))
            try { System.IO.Directory.Delete(old, true); } catch (IOException) { } // a reader may hold it; the next write retries
        return final;
    }

    /// <summary>
    /// The weights file with the metadata `disttrain eval` and a resume need: spec, step, epoch, seed, spec hash, job, and
    /// <paramref name="runMetadata"/> (how it was trained: the mode). Every run writes its weights through here, one process
    /// or a cluster, so the same training gives the same file, byte for byte.
    /// </summary>
    public static void SaveWeights(string path, TrainJob job, ParameterStore store, long step, int epoch,
        IReadOnlyDictionary<string, string>? runMetadata = null)
    {
        var spec = job.Spec();
        var extra = new Dictionary<string, string>
        {
            ["spec_hash"] = spec.Hash,
            ["job"] = JsonSerializer.Serialize(job with { ModelSpecJson = "" }),
        };
        foreach (var (k, v) in runMetadata ?? new Dictionary<string, string>()) extra[k] = v;
        Checkpoint.Save(path, store, new CheckpointInfo(spec.CanonicalJson, step, epoch, job.Seed) { Extra = extra });
    }

    /// <summary>
    /// The newest checkpoint of <paramref name="runDir"/> that loads and verifies into <paramref name="job"/>'s model, or null
    /// when there is none. A checkpoint that fails (bad checksum, no manifest, truncated, another model) is reported through
    /// <paramref name="warn"/> with the file and the reason, and the previous one is tried. <paramref name="allowUnverified"/>
    /// (`--allow-unverified`) loads files whose manifest is missing, with a warning; a manifest that is present is always checked.
    /// </summary>
    /// <param name="optimizer">The optimizer whose state the checkpoint holds, for a parameter count (default: the job's; a
    /// local-sgd run's shards hold the outer optimizer's).</param>
    /// <param name="runMetadata">How this run trains (the mode's metadata): a checkpoint that recorded other values is refused.</param>
    public static ResumePoint? FindLatest(string runDir, TrainJob job, Action<string> warn, bool allowUnverified = false,
        Func<int, DistTrain.Nn.Optimizers.Optimizer>? optimizer = null, IReadOnlyDictionary<string, string>? runMetadata = null)
    {
        foreach (var (_, dir) in List(runDir))
        {
            try { return Load(dir, job, allowUnverified, warn, optimizer, runMetadata); }
            catch (CheckpointException e) { warn($"skipping checkpoint {dir}: {e.Message}"); }
        }
        return null;
    }

    /// <summary>Loads one checkpoint folder into <paramref name="job"/>'s model and optimizer layout; throws CheckpointException
    /// naming the file. Both files must have their SHA-256 manifest unless <paramref name="allowUnverified"/>.</summary>
    public static ResumePoint Load(string dir, TrainJob job, bool allowUnverified = false, Action<string>? warn = null,
        Func<int, DistTrain.Nn.Optimizers.Optimizer>? createOptimizer = null, IReadOnlyDictionary<string, string>? runMetadata = null)
    {
        var weights = Path.Combine(dir, WeightsFile);
        var spec = job.Spec();
        var model = spec.Build((ulong)(uint)job.Seed);
        if (!File.Exists(weights)) throw new CheckpointException(weights, "is missing; the checkpoint folder is incomplete. Resume from an earlier checkpoint (delete this folder) or restore it from a backup.");
        RequireManifest(weights, allowUnverified, warn);
        var info = Checkpoint.LoadInto(model.Store, weights);
        if (info.Extra.TryGetValue("spec_hash", out var hash) && hash != spec.Hash)
            throw new CheckpointException(weights, $"was written for model spec {hash[..Math.Min(12, hash.Length)]}, not this job's {spec.Hash[..12]}; resume with the same --model.");
        if (info.Seed != job.Seed)
            throw new CheckpointException(weights, $"was written with --seed {info.Seed}, not {job.Seed}; resume with the same seed.");
        foreach (var (key, value) in runMetadata ?? new Dictionary<string, string>())
            if (info.Extra.TryGetValue(key, out var had) && had != value)
                throw new CheckpointException(weights, $"was written by a run with {key} = {had}, not this run's {value}; resume with the same " +
                    "--mode, --local-steps and --outer-* options.");
        var optimizer = createOptimizer?.Invoke(model.ParameterCount) ?? job.CreateOptimizer(model.ParameterCount);
        var optPath = Checkpoint.OptimizerPathFor(weights);
        if (!File.Exists(optPath))
            throw new CheckpointException(optPath, "is missing; the checkpoint folder is incomplete (resuming needs the optimizer state beside the weights). " +
                $"Resume from an earlier checkpoint, or start a new run from these weights with a fresh optimizer: --init {weights}.");
        RequireManifest(optPath, allowUnverified, warn);
        long t = Checkpoint.LoadOptimizerState(optimizer.State, optPath, optimizer.ToString());
        if (t != info.Step)
            throw new CheckpointException(optPath, $"holds the optimizer after {t} updates but the weights are of step {info.Step}; the two files come from different checkpoints. " +
                "Resume from a checkpoint folder whose files were written together.");
        return new ResumePoint(dir, info.Step, info.Epoch, model.Store.Values, model.Store.Buffers,
            optimizer.State.Select(s => (s.Name, s.Data)).ToArray());
    }

    /// <summary>Every checkpoint file is written with a SHA-256 manifest; one without it cannot be checked for corruption or
    /// tampering, so it is refused unless the user allows unverified files (then it is said).</summary>
    private static void RequireManifest(string path, bool allowUnverified, Action<string>? warn)
    {
        var manifest = AtomicFile.ManifestPath(path);
        if (File.Exists(manifest)) return; // SafeTensors.Read checks it
        if (!allowUnverified)
            throw new CheckpointException(path, $"has no SHA-256 manifest ({Path.GetFileName(manifest)} is missing), so its integrity cannot be checked. " +
                $"Copy the checkpoint folder again with its .sha256 files, or resume with --allow-unverified to load it without the check.");
        warn?.Invoke($"warning: {path} has no SHA-256 manifest; loading it unverified (--allow-unverified)");
    }
}
