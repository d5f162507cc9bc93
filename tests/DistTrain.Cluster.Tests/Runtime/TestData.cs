// Small learnable IDX datasets written by the tests themselves (never the real download):
// a bright 6x6 square whose position encodes the class, plus noise.
using DistTrain.Data.Sources;

namespace DistTrain.Cluster.Tests.Runtime;

public static class TestData
{
    /// <summary>Writes train/t10k IDX files into a new temp folder and returns its `idx:DIR` spec.</summary>
    public static string WriteIdx(int trainCount, int testCount, int seed = 7)
    {
        var dir = Directory.CreateTempSubdirectory("disttrain-idx-").FullName;
        Write(Path.Combine(dir, "train"), trainCount, seed);
        Write(Path.Combine(dir, "t10k"), testCount, seed + 1);
        return $"idx:{dir}";
    }

    private static void Write(string prefix, int n, int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[n * 28 * 28];
        var labels = new byte[n];
        for (int i = 0; i < n; i++)
        {
            int c = rng.Next(10);
            labels[i] = (byte)c;
            int r0 = 2 + (c / 5) * 12 + rng.Next(3), c0 = 2 + (c % 5) * 5 + rng.Next(2);
            for (int p = 0; p < 28 * 28; p++) pixels[i * 784 + p] = (byte)rng.Next(40);
            for (int y = r0; y < Math.Min(28, r0 + 6); y++)
            for (int x = c0; x < Math.Min(28, c0 + 4); x++)
                pixels[i * 784 + y * 28 + x] = (byte)(200 + rng.Next(55));
        }
        IdxWriter.WriteImages(prefix + "-images-idx3-ubyte", pixels, n, 28, 28);
        IdxWriter.WriteLabels(prefix + "-labels-idx1-ubyte", labels);
    }

    /// <summary>A small CNN with dropout (so the per-step seeds matter) — cheap enough for tests.</summary>
    public const string TinyCnn = """
        {"name":"tiny-cnn","input":[1,28,28],"loss":"cross_entropy","layers":[
          {"type":"conv2d","out":4,"kernel":3,"padding":1},{"type":"relu"},{"type":"maxpool2d","kernel":2},
          {"type":"flatten"},{"type":"dropout","p":0.25},{"type":"dense","out":10}]}
        """;
}
