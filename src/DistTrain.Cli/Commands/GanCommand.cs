// `disttrain gan`: a DCGAN trained in one process on an image dataset (default Fashion-MNIST) — per step D's update
// then G's non-saturating update, each by its own Adam (Nn/Models/Gan.cs). Real images in [0,1] are shown to D as
// 2x − 1, the range of G's tanh. Per epoch a progress line and a PNG grid of samples from fixed latents; at the end
// generator.safetensors and discriminator.safetensors (each with its spec, loadable as an nn.Sequential state_dict)
// and, given a trained classifier, its score of generated samples beside real test images and uniform noise.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DistTrain.Cli.Evaluation;
using DistTrain.Cli.Images;
using DistTrain.Cli.Training;
using DistTrain.Data;
using DistTrain.Data.Plans;
using DistTrain.Nn;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Evaluation;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class GanCommand : ICommandFactory
{
    private const ulong GridDomain = 0x47524944UL, ScoreDomain = 0x53434F5245UL, NoiseDomain = 0x4E4F495345UL;

    public string? Parent => null;

    public Command Create()
    {
        var dataset = new Option<string>("--dataset", "-d") { Description = "Image dataset (fashion-mnist | mnist | idx:DIR | ...).", DefaultValueFactory = _ => "fashion-mnist" };
        var epochs = new Option<int>("--epochs", "-e") { Description = "Passes over the training images.", DefaultValueFactory = _ => 5 };
        var batch = new Option<int>("--batch", "-b") { Description = "Real (and generated) images per step.", DefaultValueFactory = _ => 64 };
        var latent = new Option<int>("--latent") { Description = "Latent size Z of the default generator.", DefaultValueFactory = _ => 64 };
        var lr = new Option<float>("--lr") { Description = "Adam learning rate of both networks (β₁ 0.5, as DCGAN).", DefaultValueFactory = _ => 2e-4f };
        var seed = new Option<int>("--seed") { Description = "Seed of the weights, the shuffles and the latent draws.", DefaultValueFactory = _ => 1 };
        var decay = new Option<int>("--lr-decay-epochs") { Description = "Decay both learning rates linearly to 0 over the last N epochs (0 = constant)." };
        var trainImages = new Option<int>("--train-images") { Description = "Use only the first N training images (0 = all)." };
        var generator = new Option<string?>("--generator") { Description = "Generator spec file (JSON, input (Z), output the images' shape, ending in tanh); default: a small DCGAN." };
        var discriminator = new Option<string?>("--discriminator") { Description = "Discriminator spec file (JSON, input the images' shape, one logit out); default: a small DCGAN." };
        var classifier = new Option<string?>("--classifier") { Description = "A trained classifier (model.safetensors of `disttrain train --model cnn`) that scores the samples." };
        var scoreCount = new Option<int>("--score-samples") { Description = "Images per set for the classifier score.", DefaultValueFactory = _ => 5000 };
        var output = new Option<string>("--out", "-o") { Description = "Folder for the networks, sample grids and score.", DefaultValueFactory = _ => Path.Combine("runs", "gan") };
        var cmd = new Command("gan", "Train a GAN (DCGAN: transposed-convolution generator, convolutional discriminator, non-saturating loss) and write sample grids and a classifier score.")
            { dataset, epochs, batch, latent, lr, seed, decay, trainImages, generator, discriminator, classifier, scoreCount, output };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            int e = r.GetValue(epochs), b = r.GetValue(batch), z = r.GetValue(latent), n = r.GetValue(scoreCount), limit = r.GetValue(trainImages);
            if (e < 1) throw new ArgumentException($"--epochs must be at least 1, not {e}.");
            if (b < 2) throw new ArgumentException($"--batch must be at least 2 (BatchNorm needs a batch), not {b}.");
            if (z < 1) throw new ArgumentException($"--latent must be at least 1, not {z}.");
            if (n < 1) throw new ArgumentException($"--score-samples must be at least 1, not {n}.");
            if (limit < 0) throw new ArgumentException($"--train-images must be 0 (all) or positive, not {limit}.");
            int decayEpochs = r.GetValue(decay);
            if (decayEpochs < 0 || decayEpochs > e) throw new ArgumentException($"--lr-decay-epochs must be between 0 and --epochs ({e}), not {decayEpochs}.");
            var gSpec = r.GetValue(generator) is { } gf ? ModelSpec.Load(gf) : ModelSpec.Parse(GanSpecs.Generator(z));
            var dSpec = r.GetValue(discriminator) is { } df ? ModelSpec.Load(df) : ModelSpec.Parse(GanSpecs.Discriminator);
            var classifierFile = r.GetValue(classifier);
            var scorer = classifierFile is null ? null : CheckpointModel.Load(classifierFile);   // fail before training, not after
            if (scorer is not null && !scorer.Model.InputShape.AsSpan().SequenceEqual(dSpec.Input))
                throw new ArgumentException($"The classifier {scorer.File} takes {Tensor.ShapeString(scorer.Model.InputShape)}, the GAN's images are {Tensor.ShapeString(dSpec.Input)}; give a classifier trained on this dataset.");
            var (train, test) = LocalRun.LoadData(r.GetValue(dataset)!, dSpec);
            if (limit > 0 && limit < train.Count) train = train.Subset(Enumerable.Range(0, limit).ToArray());
            if (train.Count < b) throw new ArgumentException($"--batch {b} is larger than the {train.Count} training images.");
            var run = new GanRun(gSpec, dSpec, r.GetValue(seed), r.GetValue(lr), r.GetValue(output)!)
                { EpochScorer = scorer?.Model, EpochScoreCount = n, LrDecayEpochs = decayEpochs };
            run.Train(train, e, b, Console.Out);
            if (scorer is not null) run.Score(scorer, test, n, Console.Out);
            return 0;
        }));
        return cmd;
    }

    /// <summary>One GAN training run: the networks, the fixed latents of the sample grids, and the output folder.</summary>
    public sealed class GanRun
    {
        private readonly ModelSpec _gSpec, _dSpec;
        private readonly Tensor _gridZ;
        private readonly int _h, _w;

        public GanRun(ModelSpec generator, ModelSpec discriminator, int seed, float lr, string outDir)
        {
            if (discriminator.Input.Length != 3 || discriminator.Input[0] != 1)
                throw new ArgumentException($"The discriminator takes {Tensor.ShapeString(discriminator.Input)}; `gan` draws single-channel images (1,H,W).");
            _gSpec = generator; _dSpec = discriminator;
            _h = discriminator.Input[1]; _w = discriminator.Input[2];
            Seed = seed;
            OutDir = outDir;
            Gan = new Gan(generator.Build((ulong)(uint)seed), discriminator.Build(SplitMix.Mix((ulong)(uint)seed)),
                new GanOptions { GeneratorLr = lr, DiscriminatorLr = lr, Seed = seed });
            if (Gan.Generator.Layers[^1] is not Tanh)
                throw new ArgumentException($"The generator ends in {Gan.Generator.Layers[^1]}; it must end in tanh, the range [−1, 1] real images are scaled to.");
            _gridZ = new Tensor(64, Gan.LatentSize);
            Reparameterize.FillNormal(_gridZ.Span, 64, Gan.LatentSize, SplitMix.Mix((ulong)(uint)seed ^ GridDomain));
        }

        public Gan Gan { get; }
        public int Seed { get; }
        public string OutDir { get; }
        public double TrainSeconds { get; private set; }
        /// <summary>When set, each epoch's line also gives this classifier's score of <see cref="EpochScoreCount"/> generated
        /// images (the same latents as the final score, so the last epoch's figure is the final one).</summary>
        public Sequential? EpochScorer { get; set; }
        public int EpochScoreCount { get; set; } = 5000;
        /// <summary>Over the last this many epochs (K, of S steps each) both learning rates fall linearly: step d of those K·S
        /// steps runs at 1 − d/(K·S) of the rate, from the full rate down to 1/(K·S) of it at the last step.</summary>
        public int LrDecayEpochs { get; set; }

        public void Train(Dataset train, int epochs, int batch, TextWriter log)
        {
            Directory.CreateDirectory(OutDir);
            log.WriteLine($"generator:\n{Gan.Generator.Summary()}\ndiscriminator:\n{Gan.Discriminator.Summary()}");
            var x = new Tensor([batch, .. _dSpec.Input]);
            var labels = new int[batch];
            int steps = EpochPlan.CountSteps(train.Count, batch);
            var total = Stopwatch.StartNew();
            for (int epoch = 0; epoch < epochs; epoch++)
            {
                var plan = EpochPlan.Create(Seed, epoch, train.Count, batch, batch);
                var clock = Stopwatch.StartNew();
                double lossD = 0, lossG = 0, dx = 0, dgz1 = 0, dgz2 = 0;
                for (int s = 0; s < steps; s++)
                {
                    train.Gather(plan.StepIndices(s), x, labels);
                    var v = x.Span;
                    for (int i = 0; i < v.Length; i++) v[i] = MathF.FusedMultiplyAdd(2f, v[i], -1f);
                    if (LrDecayEpochs > 0)
                    {
                        long decayStep = (long)(epoch - (epochs - LrDecayEpochs)) * steps + s;   // negative before the decay starts
                        Gan.LrFactor = decayStep < 0 ? 1f : (float)(1.0 - (double)decayStep / ((long)LrDecayEpochs * steps));
                    }
                    var st = Gan.TrainStep(x);
                    lossD += st.DiscriminatorLoss; lossG += st.GeneratorLoss;
                    dx += st.RealBelief; dgz1 += st.FakeBeliefBefore; dgz2 += st.FakeBeliefAfter;
                }
                double sec = clock.Elapsed.TotalSeconds;
                var grid = Path.Combine(OutDir, $"samples-epoch{epoch + 1:D2}.png");
                WriteGrid(grid);
                string score = "";
                if (EpochScorer is { } scorer)
                {
                    var sc = ClassifierScore.Of(scorer, Generate(EpochScoreCount), EpochScoreCount);
                    score = string.Create(CultureInfo.InvariantCulture, $", classifier score {sc.InceptionScore:F2} (smallest class {sc.ClassShare.Min():P1})");
                }
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {epoch + 1}/{epochs}: D loss {lossD / steps:F3}, G loss {lossG / steps:F3}, D(x) {dx / steps:F3}, D(G(z)) {dgz1 / steps:F3} -> {dgz2 / steps:F3}, " +
                    $"{sec:F1} s, {steps * batch / sec:N0} samples/s{score}; {grid}"));
            }
            TrainSeconds = total.Elapsed.TotalSeconds;
            WriteGrid(Path.Combine(OutDir, "samples.png"));
            foreach (var (role, spec, model) in new[] { ("generator", _gSpec, Gan.Generator), ("discriminator", _dSpec, Gan.Discriminator) })
            {
                var file = Path.Combine(OutDir, $"{role}.safetensors");
                Checkpoint.Save(file, model.Store, new CheckpointInfo(spec.CanonicalJson, Gan.Step, epochs, Seed)
                    { Extra = new Dictionary<string, string> { ["gan_role"] = role } });
                log.WriteLine($"wrote {file}");
            }
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{epochs} epochs, {Gan.Step} steps in {TrainSeconds:F0} s"));
        }

        /// <summary>The classifier score of <paramref name="count"/> generated images, as many real test images and as many
        /// of uniform noise; printed and written to score.json.</summary>
        public void Score(CheckpointModel classifier, Dataset test, int count, TextWriter log)
        {
            if (!classifier.Model.InputShape.AsSpan().SequenceEqual(_dSpec.Input))
                throw new ArgumentException($"The classifier {classifier.File} takes {Tensor.ShapeString(classifier.Model.InputShape)}, the GAN's images are {Tensor.ShapeString(_dSpec.Input)}.");
            int len = _h * _w;
            var sets = new List<(string Name, ClassifierScore Score)>
            {
                ("generated", ClassifierScore.Of(classifier.Model, Generate(count), count)),
                ("real test", ClassifierScore.Of(classifier.Model, test.Features.AsSpan(0, Math.Min(count, test.Count) * len), Math.Min(count, test.Count))),
                ("uniform noise", ClassifierScore.Of(classifier.Model, Noise(count * len), count)),
            };
            log.WriteLine($"classifier {classifier.Spec.Name} ({classifier.File}):");
            log.WriteLine("set            images  score  confidence  H(y)   H(y|x)  smallest class");
            foreach (var (name, s) in sets)
            {
                int min = Array.IndexOf(s.ClassShare, s.ClassShare.Min());
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-14} {s.Count,6}  {s.InceptionScore,5:F2}  {s.MeanConfidence,10:F3}  {s.MarginalEntropy,5:F3}  {s.ConditionalEntropy,6:F3}  {s.ClassShare[min]:P1} (class {min})"));
            }
            var gen = sets[0].Score;
            log.WriteLine("generated, share per class: " + string.Join("  ", gen.ClassShare.Select((v, i) => string.Create(CultureInfo.InvariantCulture, $"{i}: {v:P1}"))));
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"score of generated / real test: {gen.InceptionScore / sets[1].Score.InceptionScore:P1}"));
            var json = JsonSerializer.Serialize(sets.ToDictionary(s => s.Name, s => s.Score), new JsonSerializerOptions { WriteIndented = true });
            File.WriteAllText(Path.Combine(OutDir, "score.json"), json);
        }

        /// <summary><paramref name="count"/> generated images in [0,1] from latents keyed by (seed, index).</summary>
        public float[] Generate(int count)
        {
            int zSize = Gan.LatentSize, len = _h * _w;
            var zAll = new float[count * zSize];
            Reparameterize.FillNormal(zAll, count, zSize, SplitMix.Mix((ulong)(uint)Seed ^ ScoreDomain));
            var images = new float[count * len];
            for (int start = 0; start < count; start += 256)
            {
                int b = Math.Min(256, count - start);
                var y = Gan.Sample(new Tensor(zAll, start * zSize, b, zSize)).Span;
                for (int i = 0; i < b * len; i++) images[start * len + i] = 0.5f * (y[i] + 1f);
            }
            return images;
        }

        private float[] Noise(int length)
        {
            var rng = Xoshiro256.ForKey(NoiseDomain, (ulong)(uint)Seed);
            var v = new float[length];
            for (int i = 0; i < length; i++) v[i] = (float)rng.NextDouble();
            return v;
        }

        private void WriteGrid(string file)
        {
            var y = Gan.Sample(_gridZ).Span;
            int len = _h * _w;
            var images = new List<float[]>();
            for (int i = 0; i < _gridZ.Dim(0); i++)
            {
                var img = new float[len];
                for (int j = 0; j < len; j++) img[j] = 0.5f * (y[i * len + j] + 1f);
                images.Add(img);
            }
            ImageGrid.Write(file, images, _h, _w, 8);
        }
    }
}
