// SimulatedCompute as pure code: the gradient pattern is the closed form Base(i) × Factor(step, micro-batch) at every
// index, small and finite; the "backward" tells the model's GradientReady hook non-increasing offsets down to 0 and the
// forward asks for every parameter first; the option parses MS / measured / off and names the fix for bad input.
using DistTrain.Cluster.Training;
using DistTrain.Nn.Models;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class SimulatedComputeTests
{
    private const string Mlp = """{"name":"mlp","input":[1,4,4],"loss":"cross_entropy","layers":[{"type":"flatten"},{"type":"dense","out":8},{"type":"relu"},{"type":"dense","out":3}]}""";

    [Fact]
    public void MicroBatchWritesThePatternAndDrivesTheModelsHooksInOrder()
    {
        var model = ModelSpec.Parse(Mlp).Build(3);
        int n = model.Store.Count;
        var needed = new List<int>();
        var ready = new List<int>();
        model.ParametersNeeded = needed.Add;
        model.GradientReady = to =>
        {
            // When the hook says "final from `to`", the values from there on are already the pattern's.
            for (int i = to; i < n; i++) Assert.Equal(SimulatedCompute.Value(5, 2, i), model.Store.Grads[i]);
            ready.Add(to);
        };
        var sim = new SimulatedCompute(4, n);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (loss, correct) = sim.MicroBatch(model, 16, step: 5, microBatch: 2);

        Assert.True(watch.Elapsed.TotalMilliseconds >= 4, "the micro-batch waits at least its time");
        Assert.Equal([n], needed);
        Assert.Equal(0, ready[^1]);
        Assert.Equal(ready.OrderByDescending(x => x), ready);
        for (int i = 0; i < n; i++)
        {
            float expected = (float)(((double)Hash(i) / (1 << 24) - 0.5) * 2e-3) * -1.5f; // odd step: minus, micro-batch 2: 1 + 2/4
            Assert.Equal(expected, model.Store.Grads[i], 1e-9f);
        }
        Assert.Equal(16 * Math.Log(10), loss, 12);
        Assert.Equal(0, correct);
    }

    /// <summary>The hash of SimulatedCompute.Base written out again as the reference.</summary>
    private static uint Hash(int i)
    {
        ulong h = (uint)(i * 2654435761L);
        h ^= h >> 15; h = (uint)(h * 0x85EBCA77UL); h ^= h >> 13;
        return (uint)h >> 8;
    }

    [Fact]
    public void ThePatternIsSmallFiniteAndOfBothSignsAndTheStepsSignAlternates()
    {
        var values = Enumerable.Range(0, 100_000).Select(SimulatedCompute.Base).ToArray();
        Assert.All(values, v => Assert.True(float.IsFinite(v) && MathF.Abs(v) <= 1e-3f));
        Assert.InRange(values.Count(v => v > 0), 45_000, 55_000);
        Assert.Equal(-SimulatedCompute.Factor(4, 1), SimulatedCompute.Factor(5, 1));
        Assert.Equal(SimulatedCompute.Value(7, 3, 11), SimulatedCompute.Value(7, 3, 11));
    }

    [Fact]
    public void LocalChunkWaitsPerLocalStepAndCountsTheChunksSamplesFromThePlan()
    {
        var model = ModelSpec.Parse(Mlp).Build(3);
        // 100 samples, batch 32 (the last 4 dropped), micro 8: 3 steps of 4 full micro-batches per epoch; 6 plan steps with
        // H = 4 make round 0 four local steps and round 1 the last two.
        var sim = new SimulatedCompute(1, model.Store.Count, seed: 1, batch: 32, micro: 8, planSteps: 6) { TrainCount = 100 };
        var mode = new ModeOptions(Messages.TrainingMode.LocalSgd, LocalSteps: 4);
        Assert.Equal(4 * 8, sim.LocalChunk(model, mode, round: 0, chunk: 3).Samples);
        Assert.Equal(SimulatedCompute.Value(0, 3, 7), model.Store.Grads[7]);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(2 * 8, sim.LocalChunk(model, mode, round: 1, chunk: 0).Samples);
        Assert.True(watch.Elapsed.TotalMilliseconds >= 2, "two local steps of 1 ms");
        Assert.Equal(SimulatedCompute.Value(1, 0, 7), model.Store.Grads[7]);
    }

    [Theory]
    [InlineData(null, null, false)]
    [InlineData("off", null, false)]
    [InlineData("measured", null, true)]
    [InlineData("12.5", 12.5, true)]
    [InlineData("0", 0.0, true)]
    public void OptionParses(string? text, double? ms, bool some)
    {
        var o = SimulateComputeOption.Parse(text);
        Assert.Equal(some, o is not null);
        if (o is not null) Assert.Equal(ms, o.Milliseconds);
    }

    [Theory]
    [InlineData("fast")]
    [InlineData("-3")]
    [InlineData("NaN")]
    public void BadOptionNamesItAndTheFix(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => SimulateComputeOption.Parse(text));
        Assert.Contains("--simulate-compute", e.Message);
        Assert.Contains("measured", e.Message);
    }
}
