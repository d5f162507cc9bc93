// Learning-rate schedules against their closed forms, and the parser's forms and errors.
using DistTrain.Nn.Optimizers;
using Xunit;

namespace DistTrain.Nn.Tests.Optimizers;

public class ScheduleTests
{
    private static void Near(double expected, float actual) => Assert.True(Math.Abs(expected - actual) <= 1e-7 * Math.Max(1, Math.Abs(expected)), $"{actual} vs {expected}");

    [Fact]
    public void Constant_and_step()
    {
        var c = LrSchedule.Parse("constant", 0.1f);
        foreach (var t in new long[] { 1, 2, 1000 }) Assert.Equal(0.1f, c.At(t));
        var s = LrSchedule.Parse("step:1000:0.5", 0.1f);
        Near(0.1, s.At(1));
        Near(0.1, s.At(1000));   // 999 updates done: not yet decayed
        Near(0.05, s.At(1001));
        Near(0.025, s.At(2001));
        Near(0.1 * Math.Pow(0.5, 7), s.At(7500));
    }

    [Fact]
    public void Cosine_anneals_to_the_minimum_and_stays()
    {
        var s = LrSchedule.Parse("cosine:100:0.001", 0.1f);
        for (long t = 1; t <= 120; t++)
        {
            var k = Math.Min(t - 1, 100);
            Near(0.001 + (0.1 - 0.001) * (1 + Math.Cos(Math.PI * k / 100)) / 2, s.At(t));
        }
        Near(0.1, s.At(1));
        Near((0.1 + 0.001) / 2, s.At(51));
        Near(0.001, s.At(101));
        // a bare "cosine" anneals over the run's total steps to 0
        var bare = LrSchedule.Parse("cosine", 0.2f, totalSteps: 10);
        Near(0.1, bare.At(6));
        Near(0, bare.At(11));
    }

    [Fact]
    public void Warmup_rises_linearly_then_hands_over()
    {
        var s = LrSchedule.Parse("warmup:4+cosine", 0.4f, totalSteps: 14);
        Near(0.1, s.At(1));
        Near(0.2, s.At(2));
        Near(0.4, s.At(4));
        Near(0.4, s.At(5));      // cosine's first update
        Near(0.2, s.At(10));     // cosine over the remaining 10 updates: halfway after 5
        Near(0, s.At(15));
        var w = LrSchedule.Parse("warmup:10+step:5:0.1", 1f);
        Near(0.5, w.At(5));
        Near(1, w.At(15));
        Near(0.1, w.At(16));
        Near(0.7, LrSchedule.Parse("warmup:10", 1f).At(7));
    }

    [Theory]
    [InlineData("linear", "Unknown learning-rate schedule")]
    [InlineData("step:0:0.5", "step interval")]
    [InlineData("step:100", "Unknown learning-rate schedule")]
    [InlineData("step:100:x", "gamma")]
    [InlineData("cosine", "cosine needs its length")]
    [InlineData("warmup:abc+cosine:10", "warm-up steps")]
    public void Bad_specs_name_the_problem(string spec, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => LrSchedule.Parse(spec, 0.1f));
        Assert.Contains(expected, e.Message);
        Assert.Contains(spec, e.Message);
    }

    [Fact]
    public void A_run_no_longer_than_its_warm_up_is_named_as_such()
    {
        var e = Assert.Throws<ArgumentException>(() => LrSchedule.Parse("warmup:3+cosine", 0.1f, totalSteps: 2));
        Assert.Contains("the run has 2 steps, no more than its 3 warm-up steps", e.Message);
        Near(0.1, LrSchedule.Parse("warmup:3+cosine", 0.1f, totalSteps: 4).At(3)); // one step left to anneal: allowed
    }
}
