// `disttrain gan`'s run on a few random images: the per-epoch and final grids are PNGs, both networks are saved with
// their specs and load back bit for bit, and the classifier score lands in score.json with the figure that
// ClassifierScore gives for the same generated images.
using System.Text.Json;
using DistTrain.Cli.Commands;
using DistTrain.Cli.Evaluation;
using DistTrain.Data;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Evaluation;
using DistTrain.Nn.Models;
using Xunit;

namespace DistTrain.Cli.Tests;

public sealed class GanCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "disttrain-gan-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private static Dataset Images(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n * 784];
        for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble();
        return new Dataset("random", [1, 28, 28], x, Enumerable.Range(0, n).Select(i => i % 10).ToArray(), 10);
    }

    [Fact]
    public void RunWritesGridsNetworksAndScore()
    {
        var g = ModelSpec.Parse(GanSpecs.Generator(16));
        var d = ModelSpec.Parse(GanSpecs.Discriminator);
        var cnnFile = Path.Combine(_dir, "cnn.safetensors");
        var cnnSpec = Presets.Spec("cnn");
        var cnn = cnnSpec.Build(2);
        Directory.CreateDirectory(_dir);
        Checkpoint.Save(cnnFile, cnn.Store, new CheckpointInfo(cnnSpec.CanonicalJson, 0, 0, 2));
        var classifier = CheckpointModel.Load(cnnFile);

        var run = new GanCommand.GanRun(g, d, seed: 3, lr: 2e-4f, _dir) { EpochScorer = classifier.Model, EpochScoreCount = 40 };
        var log = new StringWriter();
        run.Train(Images(48, 1), epochs: 1, batch: 16, log);
        Assert.Equal(3, run.Gan.Step);
        Assert.Contains("epoch 1/1: D loss", log.ToString());
        foreach (var png in new[] { "samples-epoch01.png", "samples.png" })
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(Path.Combine(_dir, png)).Take(4));

        foreach (var (role, spec, model) in new[] { ("generator", g, run.Gan.Generator), ("discriminator", d, run.Gan.Discriminator) })
        {
            var file = Path.Combine(_dir, $"{role}.safetensors");
            var info = Checkpoint.ReadInfo(file);
            Assert.Equal(spec.CanonicalJson, info.ModelSpec);
            Assert.Equal(role, info.Extra["gan_role"]);
            var loaded = ModelSpec.Parse(info.ModelSpec).Build(99);
            Checkpoint.LoadInto(loaded.Store, file);
            Assert.Equal(model.Store.Values, loaded.Store.Values);
            Assert.Equal(model.Store.Buffers, loaded.Store.Buffers);
        }

        var generated = run.Generate(40);
        Assert.All(generated, v => Assert.InRange(v, 0f, 1f));
        Assert.Equal(generated, run.Generate(40));   // the scored latents are fixed by the seed

        run.Score(classifier, Images(30, 2), 40, log);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "score.json")));
        var score = json.RootElement.GetProperty("generated");
        Assert.Equal(ClassifierScore.Of(classifier.Model, generated, 40).InceptionScore, score.GetProperty("InceptionScore").GetDouble(), 12);
        // The epoch's line scored the same 40 latents with the same weights: its figure is the final one.
        Assert.Contains(FormattableString.Invariant($"classifier score {score.GetProperty("InceptionScore").GetDouble():F2} ("), log.ToString());
        Assert.Equal(30, json.RootElement.GetProperty("real test").GetProperty("Count").GetInt32());
        Assert.Equal(40, json.RootElement.GetProperty("uniform noise").GetProperty("Count").GetInt32());
    }
}
