// A multi-thread benchmark's speed-up over one thread, measured rep by rep: every timed rep at T threads is preceded
// and followed by a one-thread rep of the same calls, and each rep is compared with the mean of its two neighbours.
// Two processes run minutes apart see another host (on this project's shared machines 2T/1T read anywhere from 1.0x to
// 1.9x for one build that way); neighbours seconds apart see the same one. Used by `bench gemm` and `bench conv`.
namespace DistTrain.Cli.Bench;

public static class Bracketing
{
    /// <summary>
    /// Speed-up of each team rep over one thread: the mean time of the one-thread reps just before and just after it,
    /// over its own. <paramref name="alone"/> holds one more rep than <paramref name="team"/> (one on each side).
    /// </summary>
    public static double[] Speedups(IReadOnlyList<double> alone, IReadOnlyList<double> team)
    {
        if (alone.Count != team.Count + 1)
            throw new ArgumentException($"Bracketing needs one more one-thread rep than team reps: {alone.Count} and {team.Count}.", nameof(alone));
        return team.Select((t, i) => (alone[i] + alone[i + 1]) / 2 / t).ToArray();
    }

    /// <summary>Adds gflops_1t_interleaved (median one-thread rep) and speedup_vs_1t with its quartiles to a result row.
    /// Times are seconds per rep (or per call: the same unit on both sides); <paramref name="flopsPerTime"/> turns the
    /// one-thread time into GFLOP/s. Every rep counts, clean or not: its one-thread neighbours ran under the same load.</summary>
    public static void AddTo(Dictionary<string, object?> row, IReadOnlyList<double> alone, IReadOnlyList<double> team, double flopsPerTime)
    {
        var speedups = Speedups(alone, team);
        row["gflops_1t_interleaved"] = flopsPerTime / Stats.Median(alone) / 1e9;
        row["speedup_vs_1t"] = Stats.Median(speedups);
        row["speedup_vs_1t_p25"] = Stats.Quantile(speedups, 0.25);
        row["speedup_vs_1t_p75"] = Stats.Quantile(speedups, 0.75);
    }
}
