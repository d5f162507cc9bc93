// Optimizer groups: a grouped Adam against one independent Adam per group (each with its own learning rate), the same
// bits whether the vector is one range or split into shards anywhere, segments against the whole-range step, and the
// "name:key=value" settings of an optimizer.
using DistTrain.Nn.Optimizers;
using Xunit;

namespace DistTrain.Nn.Tests;

public class GroupedOptimizerTests
{
    private static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    // 13 values: [0, 2) in no group, "g" = [2, 7) at lr×0.5, "d" = [7, 13) at lr×2.
    private static readonly ParameterGroup[] Groups = [new("g", 2, 5, 0.5f), new("d", 7, 6, 2f)];

    [Theory]
    [InlineData("adam")]
    [InlineData("momentum")]
    [InlineData("sgd")]
    public void EachGroupStepsAsItsOwnOptimizerWithItsOwnRate(string name)
    {
        const float lr = 0.01f;
        var values = Random(13, 1);
        var grouped = new GroupedOptimizer(OptimizerFactory.Create(name, 13), Groups);
        var parts = new (int From, int To, float Scale, Optimizer Opt)[]
        {
            (0, 2, 1f, OptimizerFactory.Create(name, 2)), (2, 7, 0.5f, OptimizerFactory.Create(name, 5)), (7, 13, 2f, OptimizerFactory.Create(name, 6)),
        };
        var expected = (float[])values.Clone();
        for (int t = 1; t <= 4; t++)
        {
            var g = Random(13, 10 + t);
            grouped.Step(values, g, lr, t);
            foreach (var (from, to, scale, opt) in parts)
                opt.Step(expected.AsSpan(from, to - from), g.AsSpan(from, to - from), lr * scale, t);
        }
        Assert.Equal(expected, values);
        Assert.NotEqual(Random(13, 1), values);
    }

    [Fact]
    public void ShardsSplitAnywhereGiveTheWholeRangesBits()
    {
        var whole = Random(13, 2);
        var sharded = (float[])whole.Clone();
        var one = new GroupedOptimizer(OptimizerFactory.Create("adam:beta1=0.5", 13), Groups);
        (int From, int To)[] cuts = [(0, 4), (4, 9), (9, 13)];   // boundaries inside both groups
        var shards = cuts.Select(c =>
        {
            var o = new GroupedOptimizer(OptimizerFactory.Create("adam:beta1=0.5", c.To - c.From), Groups);
            o.Bind(c.From);
            return o;
        }).ToArray();
        for (int t = 1; t <= 3; t++)
        {
            var g = Random(13, 20 + t);
            one.Step(whole, g, 2e-3f, t);
            for (int s = 0; s < cuts.Length; s++)
                shards[s].Step(sharded.AsSpan(cuts[s].From, cuts[s].To - cuts[s].From), g.AsSpan(cuts[s].From, cuts[s].To - cuts[s].From), 2e-3f, t);
        }
        Assert.Equal(whole, sharded);
        Assert.Equal(shards[0].ToString(), one.ToString());   // checkpoints of any shard layout name the same optimizer
    }

    [Fact]
    public void GroupsAtFactorOneAreThePlainOptimizer()
    {
        var a = Random(40, 3); var b = (float[])a.Clone();
        var plain = new Adam(40);
        var grouped = new GroupedOptimizer(new Adam(40), [new ParameterGroup("g", 0, 17, 1f), new ParameterGroup("d", 17, 23, 1f)]);
        for (int t = 1; t <= 3; t++)
        {
            var g = Random(40, 30 + t);
            plain.Step(a, g, 1e-2f, t);
            grouped.Step(b, g, 1e-2f, t);
        }
        Assert.Equal(a, b);
    }

    [Fact]
    public void SettingsAfterTheNameOverrideTheDefaults()
    {
        var adam = Assert.IsType<Adam>(OptimizerFactory.Create("adam:beta1=0.5, beta2=0.99", 3));
        Assert.Equal(0.5f, adam.Beta1);
        Assert.Equal(0.99f, adam.Beta2);
        var m = Assert.IsType<Momentum>(OptimizerFactory.Create("momentum:momentum=0.5", 3));
        Assert.Equal(0.5f, m.Beta);
        Assert.Contains("unknown setting \"beta3\"", Assert.Throws<ArgumentException>(() => OptimizerFactory.Create("adam:beta3=1", 3)).Message);
        Assert.Contains("not key=number", Assert.Throws<ArgumentException>(() => OptimizerFactory.Create("adam:beta1", 3)).Message);
        Assert.Throws<ArgumentException>(() => new GroupedOptimizer(new RmsProp(4), [new ParameterGroup("g", 0, 2, 0.5f)]));
    }
}
