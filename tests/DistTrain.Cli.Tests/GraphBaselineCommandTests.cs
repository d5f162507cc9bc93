// `disttrain graph baseline`: on the karate club, label propagation from the two leaders misses exactly one of the 32
// other members (node 8, as Zachary's own model did; worked out independently), and one-hot features alone carry no
// signal (every unlabelled node is equally far from both centroids, so the first class wins: Mr. Hi's 16 of 32).
using DistTrain.Cli;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class GraphBaselineCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o); Console.SetError(e);
        try { return (Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    [Fact]
    public void Karate_baselines_are_31_of_32_and_half()
    {
        var (code, output, err) = Run("graph", "baseline", "--dataset", "graph:karate");
        Assert.True(code == 0, err);
        Assert.Contains("34 nodes, 78 edges", output);
        Assert.Contains($"{31 / 32.0:P2} of 32 unlabelled nodes", output);
        Assert.Contains($"{16 / 32.0:P2}", output);
    }

    [Fact]
    public void A_dataset_that_is_not_a_graph_is_refused()
    {
        var (code, _, err) = Run("graph", "baseline", "--dataset", "synthetic:xor");
        Assert.Equal(2, code);
        Assert.Contains("not a graph dataset", err);
    }
}
