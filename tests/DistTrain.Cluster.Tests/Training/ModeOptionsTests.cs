// ModeOptions: the CLI's --mode/--staleness/--local-steps with clear errors, and the unit arithmetic of local-sgd rounds.
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Training;
using Xunit;

namespace DistTrain.Cluster.Tests.Training;

public class ModeOptionsTests
{
    [Fact]
    public void ParsesModesWithTheirDefaults()
    {
        Assert.Equal(ModeOptions.Sync, ModeOptions.Parse(null, null, null));
        Assert.Equal(new ModeOptions(TrainingMode.Async, Staleness: ModeOptions.DefaultStaleness), ModeOptions.Parse("async", null, null));
        Assert.Equal(new ModeOptions(TrainingMode.Async, Staleness: 0), ModeOptions.Parse("ASYNC", 0, null));
        Assert.Equal(new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 8), ModeOptions.Parse("local-sgd", null, 8));
        Assert.Equal("local-sgd", ModeOptions.Parse("local-sgd", null, null).Name());
    }

    [Theory]
    [InlineData("bogus", null, null, "--mode 'bogus' is unknown")]
    [InlineData("async", -1, null, "--staleness must be 0 or more")]
    [InlineData("local-sgd", null, 0, "--local-steps must be at least 1")]
    [InlineData("sync", 3, null, "--staleness applies only to --mode async")]
    [InlineData("local-sgd", 3, null, "--staleness applies only to --mode async")]
    [InlineData("async", null, 4, "--local-steps applies only to --mode local-sgd")]
    public void RejectsImpossibleOrMisplacedOptionsNamingThem(string mode, int? staleness, int? localSteps, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => ModeOptions.Parse(mode, staleness, localSteps));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void LocalSgdRoundsCoverThePlanStepsOnceWithAShortLastRound()
    {
        var m = new ModeOptions(TrainingMode.LocalSgd, LocalSteps: 4);
        Assert.Equal(3, m.Units(10));
        Assert.Equal((0L, 4), m.RoundSteps(0, 10));
        Assert.Equal((8L, 2), m.RoundSteps(2, 10));
        Assert.Equal((12L, 0), m.RoundSteps(3, 10));
        Assert.Equal(9, m.LastStepOf(2, 10));
        Assert.Equal(3, m.LastStepOf(0, 10));
        Assert.Equal(10, ModeOptions.Sync.Units(10));
        Assert.Equal(7, ModeOptions.Sync.LastStepOf(7, 10));
    }
}
