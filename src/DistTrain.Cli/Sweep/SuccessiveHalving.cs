// Successive halving (Jamieson & Talwalkar 2016, "Non-stochastic Best Arm Identification and Hyperparameter
// Optimization"; the inner loop of Hyperband, Li et al. 2018): every configuration trains with a small budget,
// the best 1/eta go on with eta times the budget, and so on up to the full budget. Without halving a sweep is
// one rung at the full budget. Pure: the plan and the promotion rule, no training.
namespace DistTrain.Cli.Sweep;

public enum BudgetUnit { Steps, Epochs }

/// <summary>One rung: how many trials run in it and with what budget.</summary>
public sealed record Rung(int Index, int Trials, long Budget);

public sealed class HalvingPlan
{
    HalvingPlan(IReadOnlyList<Rung> rungs, BudgetUnit unit, int eta) { Rungs = rungs; Unit = unit; Eta = eta; }

    public IReadOnlyList<Rung> Rungs { get; }
    public BudgetUnit Unit { get; }
    public int Eta { get; }
    public bool Halving => Rungs.Count > 1;

    /// <summary>Every trial at the full budget.</summary>
    public static HalvingPlan Single(int trials, long budget, BudgetUnit unit)
    {
        if (trials < 1) throw new ArgumentException($"--trials must be at least 1, not {trials}.");
        if (budget < 1) throw new ArgumentException($"--budget must be at least 1 {Name(unit)}, not {budget}.");
        return new HalvingPlan([new Rung(0, trials, budget)], unit, 1);
    }

    /// <summary>
    /// Rung k runs max(1, ⌊n_(k-1)/eta⌋) trials with min(minBudget·eta^k, maxBudget); the last rung is the one that
    /// reaches maxBudget, so the winner has trained with the full budget.
    /// </summary>
    public static HalvingPlan Create(int trials, long minBudget, long maxBudget, int eta, BudgetUnit unit)
    {
        if (trials < 1) throw new ArgumentException($"--trials must be at least 1, not {trials}.");
        if (eta < 2) throw new ArgumentException($"--eta (the reduction factor of successive halving) must be at least 2, not {eta}.");
        if (minBudget < 1) throw new ArgumentException($"--halving (the first rung's budget) must be at least 1 {Name(unit)}, not {minBudget}.");
        if (minBudget > maxBudget)
            throw new ArgumentException($"--halving {minBudget} is above --budget {maxBudget}: the first rung's budget must not exceed the full one.");
        var rungs = new List<Rung>();
        long b = minBudget;
        int n = trials;
        for (int k = 0; ; k++)
        {
            rungs.Add(new Rung(k, n, b));
            if (b >= maxBudget) break;
            b = Math.Min(checked(b * eta), maxBudget);
            n = Math.Max(1, n / eta);
        }
        return new HalvingPlan(rungs, unit, eta);
    }

    public static string Name(BudgetUnit unit) => unit == BudgetUnit.Steps ? "steps" : "epochs";

    /// <summary>
    /// The trials that go on to the next rung: the <paramref name="count"/> best of those that finished (lowest score;
    /// ties to the lower trial number, so the choice never depends on finishing order). Failed trials never go on.
    /// </summary>
    public static IReadOnlyList<int> Promote(IEnumerable<(int Trial, double Score)> finished, int count) =>
        finished.Where(f => double.IsFinite(f.Score)).OrderBy(f => f.Score).ThenBy(f => f.Trial).Take(count).Select(f => f.Trial).ToList();

    public override string ToString() => Halving
        ? $"successive halving, eta {Eta}: " + string.Join(", ", Rungs.Select(r => $"{r.Trials} × {r.Budget}")) + $" {Name(Unit)}"
        : $"{Rungs[0].Trials} trials × {Rungs[0].Budget} {Name(Unit)}";
}

/// <summary>The figure trials are ranked by, read from the last epoch record of a run's metrics.jsonl.</summary>
public sealed record SweepMetric(string Name, bool Maximize)
{
    public static readonly IReadOnlyList<SweepMetric> All =
        [new("test_accuracy", true), new("test_loss", false), new("train_loss", false), new("train_accuracy", true)];

    public static SweepMetric Parse(string name) =>
        All.FirstOrDefault(m => m.Name == name)
        ?? throw new ArgumentException($"--metric {name} is not one of {string.Join(", ", All.Select(m => m.Name))}.");

    /// <summary>What the search minimises: the metric, negated when higher is better; +∞ for a failed trial.</summary>
    public double Score(double metric) => double.IsFinite(metric) ? (Maximize ? -metric : metric) : double.PositiveInfinity;

    public double Read(Plotting.EpochPoint e) => Name switch
    {
        "test_accuracy" => e.TestAccuracy,
        "test_loss" => e.TestLoss,
        "train_loss" => e.TrainLoss,
        _ => e.TrainAccuracy,
    };

    public override string ToString() => $"{Name} ({(Maximize ? "higher" : "lower")} is better)";
}
