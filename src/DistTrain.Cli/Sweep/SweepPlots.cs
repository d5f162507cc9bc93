// PNG plots of a sweep with ScottPlot (RunPlots' size and style): the metric of every run against its trial
// number, and against the main (first varied) parameter, one colour per rung, the best run circled.
// A log range is drawn on a log axis (log10 positions, labelled with the values).
using System.Globalization;
using DistTrain.Cli.Plotting;
using ScottPlot;

namespace DistTrain.Cli.Sweep;

public static class SweepPlots
{
    /// <summary>Writes metric_by_trial.png and metric_by_NAME.png into <paramref name="outDir"/>; returns the files.</summary>
    public static IReadOnlyList<string> Write(string outDir, SearchSpace space, SweepMetric metric, SweepOutcome outcome, string unit = "steps")
    {
        var files = new List<string>
        {
            RunPlots.SavePng(Draw(space, metric, outcome, null, unit), Path.Combine(outDir, "metric_by_trial.png")),
        };
        if (space.Varied.FirstOrDefault() is { } main)
            files.Add(RunPlots.SavePng(Draw(space, metric, outcome, main, unit), Path.Combine(outDir, $"metric_by_{FileSafe(main.Name)}.png")));
        return files;
    }

    /// <summary>The metric against trial number (<paramref name="axis"/> null) or against one parameter.</summary>
    public static Plot Draw(SearchSpace space, SweepMetric metric, SweepOutcome outcome, ParamRange? axis, string unit = "steps")
    {
        int index = axis is null ? -1 : space.Ranges.ToList().IndexOf(axis);
        bool log = axis?.Kind == RangeKind.Log;
        double X(TrialResult r)
        {
            if (axis is null) return r.Run.Trial;
            double v = axis.AxisValue(r.Run.Point.Values[index]);
            return log ? Math.Log10(v) : v;
        }
        var plot = RunPlots.NewPlot(axis is null ? $"{metric.Name} of every trial" : $"{metric.Name} against {axis.Name}",
            axis is null ? "trial" : axis.Name + (log ? " (log scale)" : ""), metric.Name);
        var palette = new ScottPlot.Palettes.Category10();
        var ok = outcome.Results.Where(r => r.Ok).ToList();
        foreach (var rung in ok.GroupBy(r => r.Run.Rung).OrderBy(g => g.Key))
        {
            var pts = rung.OrderBy(X).ToList();
            var s = plot.Add.Scatter(pts.Select(X).ToArray(), pts.Select(r => r.Outcome.Metric).ToArray(), palette.GetColor(rung.Key));
            s.LineWidth = 0;
            s.MarkerShape = MarkerShape.FilledCircle;
            s.MarkerSize = 9;
            s.LegendText = $"rung {rung.Key} ({pts[0].Run.Budget} {unit})";
        }
        if (outcome.Best is { } best)
        {
            var b = plot.Add.Scatter(new[] { X(best) }, new[] { best.Outcome.Metric }, Colors.Crimson);
            b.LineWidth = 0;
            b.MarkerShape = MarkerShape.OpenCircle;
            b.MarkerSize = 22;
            b.LegendText = $"best: trial {best.Run.Trial}";
        }
        if (axis is null) plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        else if (log && ok.Count > 0) plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(LogTicks(ok.Min(X), ok.Max(X)));
        else if (axis.Kind == RangeKind.Choice && !axis.Choices.All(c => double.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out _)))
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(axis.Choices.Select((c, i) => new Tick(i, c)).ToArray());
        plot.ShowLegend(Edge.Right);
        return plot;
    }

    /// <summary>Ticks at 1, 2 and 5 times the powers of ten between two log10 positions.</summary>
    static Tick[] LogTicks(double lo, double hi)
    {
        var ticks = new List<Tick>();
        for (int k = (int)Math.Floor(lo) - 1; k <= (int)Math.Ceiling(hi); k++)
            foreach (var m in new[] { 1, 2, 5 })
            {
                double p = k + Math.Log10(m);
                if (p >= lo - 0.15 && p <= hi + 0.15) ticks.Add(new Tick(p, (m * Math.Pow(10, k)).ToString("G3", CultureInfo.InvariantCulture)));
            }
        return ticks.ToArray();
    }

    static string FileSafe(string name) => string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_'));
}
