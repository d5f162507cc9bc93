// Bayesian optimisation in the way of Snoek, Larochelle & Adams 2012 ("Practical Bayesian Optimization of Machine
// Learning Algorithms"): a Gaussian process (Matérn 5/2, GaussianProcess.cs) fitted to the finished trials' scores,
// its length scale and noise picked by marginal likelihood, and the next trial is the candidate of highest expected
// improvement. Trials still running enter as "constant liars" at the mean score (Ginsbourger, Le Riche & Carraro
// 2010), so parallel proposals spread out. The first trials are the random search's draws.
using DistTrain.Data.Plans;

namespace DistTrain.Cli.Sweep;

public sealed class BayesianSearch(SearchSpace space, ulong seed, int? initialTrials = null) : ISearchStrategy
{
    const ulong Domain = 0x5357_4545_5042_4159; // "SWEEPBAY"
    const int UniformCandidates = 2000, LocalCandidates = 100;
    static readonly double[] LengthScales = [0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2];
    static readonly double[] Noises = [1e-6, 1e-3, 1e-2, 0.1];

    /// <summary>Random trials before the model proposes (at least d + 1 points, and 3).</summary>
    public int InitialTrials { get; } = initialTrials ?? Math.Max(3, space.Dimensions + 1);

    public string Name => "bayes";
    public bool Adaptive => true;

    public string Describe() =>
        $"Bayesian optimisation (Gaussian process, Matérn 5/2, expected improvement; {InitialTrials} random trials first; seed {seed})";

    public TrialPoint Propose(int trial, IReadOnlyList<Observation> finished, IReadOnlyList<TrialPoint> pending)
    {
        var ok = finished.Where(o => double.IsFinite(o.Score)).ToList();
        if (trial < InitialTrials || ok.Count < 2) return space.Decode(RandomSearch.Unit(space.Dimensions, seed, trial));

        // A failed trial (diverged, say) counts as the worst score seen, so the model learns to avoid its region.
        double worst = ok.Max(o => o.Score);
        var x = finished.Select(o => space.Encode(o.Point)).ToList();
        var raw = finished.Select(o => double.IsFinite(o.Score) ? o.Score : worst).ToArray();
        double mean = raw.Average(), sd = Math.Sqrt(raw.Sum(v => (v - mean) * (v - mean)) / raw.Length);
        if (!(sd > 1e-12)) sd = 1;
        var y = raw.Select(v => (v - mean) / sd).ToList();

        GaussianProcess? best = null;
        foreach (var l in LengthScales)
            foreach (var n in Noises)
            {
                var gp = new GaussianProcess(x, y, l, n);
                if (best is null || gp.LogMarginalLikelihood > best.LogMarginalLikelihood) best = gp;
            }
        var model = best!;
        if (pending.Count > 0)
            model = new GaussianProcess([.. x, .. pending.Select(space.Encode)], [.. y, .. pending.Select(_ => 0.0)], model.LengthScale, model.Noise);
        double incumbent = y.Min();

        var seen = new HashSet<TrialPoint>(finished.Select(o => o.Point).Concat(pending));
        var rng = Xoshiro256.ForKey(Domain, seed, (ulong)trial);
        TrialPoint? pick = null;
        double pickEi = double.NegativeInfinity;
        void Consider(double[] u)
        {
            var p = space.Decode(u);
            if (seen.Contains(p)) return;
            double ei = model.ExpectedImprovement(space.Encode(p), incumbent); // the rounded point is the one that runs
            if (ei > pickEi) { pickEi = ei; pick = p; }
        }
        var u = new double[space.Dimensions];
        for (int c = 0; c < UniformCandidates; c++)
        {
            for (int d = 0; d < u.Length; d++) u[d] = rng.NextDouble();
            Consider(u);
        }
        // Refine around the best few trials: EI's maximum is often close to the incumbent.
        foreach (var o in finished.Select((o, i) => (o, y: y[i])).OrderBy(t => t.y).Take(3))
        {
            var centre = space.Encode(o.o.Point);
            for (int c = 0; c < LocalCandidates; c++)
            {
                double scale = c % 2 == 0 ? 0.03 : 0.1;
                for (int d = 0; d < u.Length; d++) u[d] = Math.Clamp(centre[d] + scale * rng.NextGaussian(), 0, 1 - 1e-9);
                Consider(u);
            }
        }
        // Every candidate was a configuration already tried (a small list space): fall back to a fresh random draw.
        return pick ?? space.Decode(RandomSearch.Unit(space.Dimensions, seed ^ 0x9E3779B97F4A7C15UL, trial));
    }
}
