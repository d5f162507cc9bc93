// LeasePolicy: the ceiling until two steps are timed, then the median step time times the multiple, within floor and ceiling.
using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class LeasePolicyTests
{
    private static readonly DateTime T0 = new(2026, 1, 1);

    [Fact]
    public void FollowsTheMedianStepTimeWithinFloorAndCeiling()
    {
        var p = new LeasePolicy(TimeSpan.FromSeconds(1), 4, TimeSpan.FromMinutes(2));
        Assert.Equal(TimeSpan.FromMinutes(2), p.Current);
        Assert.Equal(TimeSpan.FromMinutes(2), p.StepCompleted(T0));            // one completion: no interval yet
        Assert.Equal(TimeSpan.FromSeconds(2), p.StepCompleted(T0.AddSeconds(0.5)));   // 4 x 0.5 s
        p.StepCompleted(T0.AddSeconds(0.6));                                   // intervals 0.5, 0.1: median 0.3 -> 1.2 s
        Assert.Equal(TimeSpan.FromSeconds(1.2), p.Current);
        p.StepCompleted(T0.AddSeconds(10.6));                                  // 0.5, 0.1, 10: median 0.5 -> 2 s (one slow step moves little)
        Assert.Equal(TimeSpan.FromSeconds(2), p.Current);
        for (int i = 1; i <= 16; i++) p.StepCompleted(T0.AddSeconds(10.6 + 0.01 * i)); // the window forgets the old steps: 4 x 10 ms < floor
        Assert.Equal(TimeSpan.FromSeconds(1), p.Current);
        for (int i = 1; i <= 16; i++) p.StepCompleted(T0.AddSeconds(20 + 60 * i));      // 4 x 60 s > ceiling
        Assert.Equal(TimeSpan.FromMinutes(2), p.Current);
    }

    [Fact]
    public void ImpossibleSettingsAreNamed()
    {
        Assert.Contains("floor", Assert.Throws<ArgumentOutOfRangeException>(() => new LeasePolicy(TimeSpan.Zero, 4, TimeSpan.FromMinutes(1))).Message);
        Assert.Contains("multiple", Assert.Throws<ArgumentOutOfRangeException>(() => new LeasePolicy(TimeSpan.FromSeconds(1), 0.5, TimeSpan.FromMinutes(1))).Message);
        Assert.Contains("ceiling", Assert.Throws<ArgumentOutOfRangeException>(() => new LeasePolicy(TimeSpan.FromSeconds(5), 4, TimeSpan.FromSeconds(1))).Message);
    }
}
