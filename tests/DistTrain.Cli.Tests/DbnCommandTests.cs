// `disttrain dbn`'s pipeline on a tiny bars set: the features each RBM passes up are σ(c + W·v) (checked in double),
// and the fine-tuned MLP starts from the stack: right after the copy its sigmoid layers give the RBMs' features.
using DistTrain.Cli.Commands;
using DistTrain.Data;
using DistTrain.Nn;
using DistTrain.Nn.Layers;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Cli.Tests;

public class DbnCommandTests
{
    /// <summary>6x6 images, each lighting one of 6 rows or 6 columns; the label is which (12 classes).</summary>
    private static Dataset Bars(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n * 36];
        var y = new int[n];
        for (int s = 0; s < n; s++)
        {
            int bar = y[s] = rng.Next(12);
            for (int p = 0; p < 6; p++) x[s * 36 + (bar < 6 ? bar * 6 + p : p * 6 + bar - 6)] = 1f;
            for (int p = 0; p < 36; p++) if (x[s * 36 + p] == 0 && rng.NextDouble() < 0.05) x[s * 36 + p] = 1f;
        }
        return new Dataset("bars", [1, 6, 6], x, y, 12);
    }

    [Fact]
    public void StackFeedsItsFeaturesUpAndStartsTheMlp()
    {
        var train = Bars(256, 1);
        var test = Bars(64, 2);
        var result = DbnCommand.Run(train, test, [16, 8], k: 1, pretrainEpochs: 2, labels: 48, epochs: 3, seed: 5, TextWriter.Null);
        Assert.InRange(result.Pretrained, 0, 1);
        Assert.InRange(result.Random, 0, 1);

        // A fresh stack with known weights: the features are σ(c + W·v), and the copied MLP reproduces them layer by layer.
        var rbm = new Rbm(36, 4);
        _ = new DistTrain.Nn.Models.Sequential([36], [rbm], seed: 3);
        var rng = new Random(9);
        foreach (var p in new[] { rbm.Weight, rbm.HiddenBias }) { var s = p.Value.Span; for (int i = 0; i < s.Length; i++) s[i] = (float)(rng.NextDouble() - 0.5); }
        var features = DbnCommand.HiddenFeatures(rbm, train.Flattened());
        for (int s = 0; s < 5; s++)
            for (int j = 0; j < 4; j++)
            {
                double z = rbm.HiddenBias.Value[j];
                for (int i = 0; i < 36; i++) z += (double)rbm.Weight.Value[j * 36 + i] * train.Features[s * 36 + i];
                Assert.Equal(1 / (1 + Math.Exp(-z)), features.Features[s * 4 + j], 5);
            }

        var mlp = DbnCommand.MlpSpec([1, 6, 6], [4], 12);
        var model = DistTrain.Nn.Models.ModelBuilder.Build(mlp, 1);
        var dense = (Dense)model.Layers.First(l => l.Name == "l1");
        rbm.Weight.Value.Span.CopyTo(dense.Weight.Value.Span);
        rbm.HiddenBias.Value.Span.CopyTo(dense.Bias!.Value.Span);
        var x = new Tensor(train.Features, 0, 5, 1, 6, 6);
        var h = x;
        for (int i = 0; i < 3; i++) h = model.Layers[i].Forward(h, StepContext.Eval);   // flatten, l1, s1
        for (int i = 0; i < 20; i++) Assert.Equal(features.Features[i], h.Span[i], 5);
    }
}
