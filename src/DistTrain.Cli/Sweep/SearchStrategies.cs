// The search strategies of `disttrain sweep`: grid (every combination), random (independent seeded draws) and
// Bayesian optimisation (BayesianSearch.cs). A strategy proposes trial i's configuration from the trials that
// finished before it; the scheduler decides which those are, so proposals never depend on timing.
using DistTrain.Data.Plans;

namespace DistTrain.Cli.Sweep;

/// <summary>A finished trial as a strategy sees it: its configuration and its score (lower is better; +∞ = failed).</summary>
public sealed record Observation(TrialPoint Point, double Score);

public interface ISearchStrategy
{
    /// <summary>"grid", "random", "bayes".</summary>
    string Name { get; }
    /// <summary>Whether proposals read finished trials (then the scheduler waits for them; see SweepScheduler).</summary>
    bool Adaptive { get; }
    /// <summary>Trial <paramref name="trial"/>'s configuration, given the trials finished before it and those still running.</summary>
    TrialPoint Propose(int trial, IReadOnlyList<Observation> finished, IReadOnlyList<TrialPoint> pending);
    /// <summary>A one-line description for the report.</summary>
    string Describe();
}

public static class SearchStrategies
{
    public static readonly IReadOnlyList<string> Names = ["grid", "random", "bayes"];

    public static ISearchStrategy Create(string name, SearchSpace space, ulong seed, int gridPoints) => name switch
    {
        "grid" => new GridSearch(space, gridPoints),
        "random" => new RandomSearch(space, seed),
        "bayes" => new BayesianSearch(space, seed),
        _ => throw new ArgumentException($"--strategy {name} is not one of {string.Join(", ", Names)}."),
    };
}

/// <summary>Every combination of the grid values in order (SearchSpace.Grid); trial i is the i-th.</summary>
public sealed class GridSearch(SearchSpace space, int defaultPoints) : ISearchStrategy
{
    public IReadOnlyList<TrialPoint> Points { get; } = space.Grid(defaultPoints);
    public string Name => "grid";
    public bool Adaptive => false;

    public TrialPoint Propose(int trial, IReadOnlyList<Observation> finished, IReadOnlyList<TrialPoint> pending) =>
        trial < Points.Count ? Points[trial] : throw new ArgumentOutOfRangeException(nameof(trial), $"The grid has {Points.Count} points.");

    public string Describe() => $"grid ({Points.Count} points; {defaultPoints} per range without :N)";
}

/// <summary>Independent uniform draws (log-uniform for log ranges); trial i's draw depends only on (seed, i).</summary>
public sealed class RandomSearch(SearchSpace space, ulong seed) : ISearchStrategy
{
    const ulong Domain = 0x5357_4545_5052_4E44; // "SWEEPRND": keeps these streams apart from the data's

    public string Name => "random";
    public bool Adaptive => false;

    public TrialPoint Propose(int trial, IReadOnlyList<Observation> finished, IReadOnlyList<TrialPoint> pending) =>
        space.Decode(Unit(space.Dimensions, seed, trial));

    /// <summary>Trial i's point in the unit cube.</summary>
    public static double[] Unit(int dims, ulong seed, int trial)
    {
        var rng = Xoshiro256.ForKey(Domain, seed, (ulong)trial);
        var u = new double[dims];
        for (int d = 0; d < dims; d++) u[d] = rng.NextDouble();
        return u;
    }

    public string Describe() => $"random (seed {seed})";
}
