// Integrity at rest: a checkpoint folder is resumed only when both files carry their SHA-256 manifest, fit the job's
// model and seed, and hold weights and optimizer state of the same step; each failure is a CheckpointException that
// names the file and the fix, and FindLatest falls back to the previous checkpoint saying why.
using DistTrain.Nn.Checkpoints;
using DistTrain.Training;
using DistTrain.Training.Checkpoints;
using DistTrain.Nn.Models;
using Xunit;

namespace DistTrain.Nn.Tests.Checkpoints;

public sealed class ResumeIntegrityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("disttrain-resume-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TrainJob Job(string activation = "relu") => new()
    {
        ModelSpecJson = ModelSpec.Parse($$"""
            {"name":"tiny","input":[6],"loss":"cross_entropy","layers":[{"type":"dense","out":5},{"type":"{{activation}}"},{"type":"dense","out":3}]}
            """).CanonicalJson,
        Dataset = "synthetic:quadrants", Optimizer = "adam", Seed = 3,
    };

    /// <summary>Writes the checkpoint of <paramref name="step"/> with weights and Adam moments that differ per step.</summary>
    private (string Dir, float[] Values, float[][] State) Write(TrainJob job, long step)
    {
        var model = job.Spec().Build((ulong)job.Seed);
        var rng = new Random((int)step);
        for (int i = 0; i < model.Store.Values.Length; i++) model.Store.Values[i] = (float)(rng.NextDouble() - 0.5);
        var opt = job.CreateOptimizer(model.ParameterCount);
        foreach (var (_, data) in opt.State)
            for (int i = 0; i < data.Length; i++) data[i] = (float)rng.NextDouble();
        var dir = CheckpointSeries.Write(_dir, job, model.Store, opt.State, opt.ToString(), step, 0);
        return (dir, model.Store.Values.ToArray(), opt.State.Select(s => s.Data.ToArray()).ToArray());
    }

    private static string Weights(string dir) => Path.Combine(dir, CheckpointSeries.WeightsFile);
    private static string Optimizer(string dir) => Checkpoint.OptimizerPathFor(Weights(dir));

    [Fact]
    public void A_complete_checkpoint_resumes_with_its_exact_weights_and_optimizer_state()
    {
        var job = Job();
        var (dir, values, state) = Write(job, 7);
        var point = CheckpointSeries.Load(dir, job);
        Assert.Equal(7, point.Step);
        Assert.Equal(values, point.Values);
        Assert.Equal(state, point.OptimizerState.Select(s => s.Data).ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_missing_manifest_is_refused_naming_the_file_and_the_fix_unless_unverified_files_are_allowed(bool optimizerFile)
    {
        var job = Job();
        var (dir, values, _) = Write(job, 4);
        var file = optimizerFile ? Optimizer(dir) : Weights(dir);
        File.Delete(AtomicFile.ManifestPath(file));

        var e = Assert.Throws<CheckpointException>(() => CheckpointSeries.Load(dir, job));
        Assert.Equal(file, e.FilePath);
        Assert.Contains(Path.GetFileName(file) + ".sha256", e.Message);
        Assert.Contains("--allow-unverified", e.Message);

        // Explicitly allowed: loads the same values and says it did so unverified.
        var said = new List<string>();
        var point = CheckpointSeries.Load(dir, job, allowUnverified: true, warn: said.Add);
        Assert.Equal(values, point.Values);
        Assert.Contains(said, l => l.Contains(file) && l.Contains("unverified"));
    }

    [Fact]
    public void Without_a_manifest_the_newest_checkpoint_is_skipped_for_the_previous_one_that_verifies()
    {
        var job = Job();
        var (older, olderValues, _) = Write(job, 3);
        var (newer, _, _) = Write(job, 6);
        File.Delete(AtomicFile.ManifestPath(Weights(newer)));
        var said = new List<string>();
        var point = CheckpointSeries.FindLatest(_dir, job, said.Add);
        Assert.NotNull(point);
        Assert.Equal((3L, older), (point.Step, point.Directory));
        Assert.Equal(olderValues, point.Values);
        Assert.Contains(said, l => l.Contains(Weights(newer)) && l.Contains("no SHA-256 manifest"));

        // With only the unverified one left, nothing resumes unless allowed.
        Directory.Delete(older, true);
        said.Clear();
        Assert.Null(CheckpointSeries.FindLatest(_dir, job, said.Add));
        Assert.Equal(6, CheckpointSeries.FindLatest(_dir, job, said.Add, allowUnverified: true)!.Step);
    }

    [Fact]
    public void A_manifest_that_is_present_is_checked_even_when_unverified_files_are_allowed()
    {
        var job = Job();
        var (dir, _, _) = Write(job, 2);
        var bytes = File.ReadAllBytes(Weights(dir));
        bytes[^1] ^= 1; // one bit of the last weight
        File.WriteAllBytes(Weights(dir), bytes);
        var e = Assert.Throws<CheckpointException>(() => CheckpointSeries.Load(dir, job, allowUnverified: true));
        Assert.Contains("checksum mismatch", e.Message);
    }

    [Fact]
    public void A_checkpoint_of_another_model_spec_is_refused_even_when_every_shape_fits()
    {
        // relu -> tanh: the same parameter names and shapes, so only the spec hash can tell.
        var (dir, _, _) = Write(Job("relu"), 5);
        var job = Job("tanh");
        var e = Assert.Throws<CheckpointException>(() => CheckpointSeries.Load(dir, job));
        Assert.Equal(Weights(dir), e.FilePath);
        Assert.Contains($"not this job's {job.Spec().Hash[..12]}", e.Message);
        Assert.Contains("--model", e.Message);
    }

    [Fact]
    public void A_missing_optimizer_file_is_named_with_both_ways_out()
    {
        var job = Job();
        var (dir, _, _) = Write(job, 5);
        File.Delete(Optimizer(dir));
        File.Delete(AtomicFile.ManifestPath(Optimizer(dir)));
        var e = Assert.Throws<CheckpointException>(() => CheckpointSeries.Load(dir, job, allowUnverified: true));
        Assert.Equal(Optimizer(dir), e.FilePath);
        Assert.Contains("is missing", e.Message);
        Assert.Contains($"--init {Weights(dir)}", e.Message);
    }

    [Fact]
    public void Optimizer_state_of_another_step_is_refused_naming_both_steps()
    {
        var job = Job();
        var (early, _, _) = Write(job, 3);
        var (late, _, _) = Write(job, 8);
        // The step-3 optimizer file with its own (valid) manifest, copied beside the step-8 weights.
        File.Copy(Optimizer(early), Optimizer(late), overwrite: true);
        File.Copy(AtomicFile.ManifestPath(Optimizer(early)), AtomicFile.ManifestPath(Optimizer(late)), overwrite: true);
        var e = Assert.Throws<CheckpointException>(() => CheckpointSeries.Load(late, job));
        Assert.Equal(Optimizer(late), e.FilePath);
        Assert.Contains("after 3 updates but the weights are of step 8", e.Message);
    }
}
