// Small test models shared by the Sequential, determinism and allocation tests.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;

namespace DistTrain.Nn.Tests;

internal static class TestModels
{
    /// <summary>The `mlp` preset's layers: Flatten, 784-256-128-10 with ReLUs (as the torchsharp peer).</summary>
    public static Sequential Mlp(int seed = 0) => new([1, 28, 28],
        [new Flatten(), new Dense(784, 256), new ReLU(), new Dense(256, 128), new ReLU(), new Dense(128, 10)], seed);

    /// <summary>A small CNN with every conv-model layer kind, dropout included.</summary>
    public static Sequential SmallCnn(int seed = 0) => new([1, 12, 12],
    [
        new Conv2d(1, 4, 3, padding: 1), new ReLU(), new MaxPool2d(2),
        ResidualBlock.Basic(4, 6, stride: 2),
        new AvgPool2d(1), new Flatten(), new Dropout(0.25f), new Dense(6 * 3 * 3, 16), new GELU(), new Dense(16, 5),
    ], seed);
}
