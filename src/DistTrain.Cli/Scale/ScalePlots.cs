// PNG plots of `disttrain scale` (RunPlots' size and style): speed-up against worker processes, one line per series
// with the ideal (linear) line, and a stacked bar per run of the mean step: one worker's compute, communication and
// wait, and the rest of the step.
using DistTrain.Cli.Plotting;
using ScottPlot;

namespace DistTrain.Cli.Scale;

public static class ScalePlots
{
    public static IReadOnlyList<string> Write(IReadOnlyList<ScaleResult> runs, string outDir)
    {
        var ok = runs.Where(r => r.Summary is not null).ToList();
        if (ok.Count == 0) return [];
        return [RunPlots.SavePng(SpeedUp(ok), Path.Combine(outDir, "speedup.png")), RunPlots.SavePng(Breakdown(ok), Path.Combine(outDir, "step_breakdown.png"))];
    }

    public static Plot SpeedUp(IReadOnlyList<ScaleResult> runs)
    {
        var plot = RunPlots.NewPlot("Speed-up against worker processes", "worker processes", "speed-up");
        var palette = new ScottPlot.Palettes.Category10();
        int i = 0;
        foreach (var series in runs.GroupBy(r => r.Point.Series))
        {
            var points = series.OrderBy(r => r.Point.Workers).ToList();
            var line = plot.Add.Scatter(points.Select(r => (double)r.Point.Workers).ToArray(), points.Select(r => r.SpeedUp).ToArray(), palette.GetColor(i++));
            line.LegendText = series.Key;
            line.MarkerSize = 7;
            var linked = points.Where(r => double.IsFinite(r.LinkBound)).ToList();
            if (linked.Count > 0)
            {
                double baseRate = points[0].Summary!.SamplesPerSecond;
                var bound = plot.Add.Scatter(linked.Select(r => (double)r.Point.Workers).ToArray(),
                    linked.Select(r => Math.Min(r.LinkBound, baseRate * r.Point.Workers / points[0].Point.Workers) / baseRate).ToArray(), line.Color);
                bound.LinePattern = LinePattern.Dotted;
                bound.LegendText = series.Key + ", link-bound";
            }
        }
        int lo = runs.Min(r => r.Point.Workers), hi = runs.Max(r => r.Point.Workers);
        var ideal = plot.Add.Line(lo, 1, hi, (double)hi / lo);
        ideal.LinePattern = LinePattern.Dashed;
        ideal.Color = Colors.Gray;
        ideal.LegendText = "ideal (linear)";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(Edge.Right);
        return plot;
    }

    public static Plot Breakdown(IReadOnlyList<ScaleResult> runs)
    {
        var plot = RunPlots.NewPlot("Mean step: one worker's share", "", "milliseconds");
        var parts = new (string Label, Color Color, Func<RunSummary, double> Value)[]
        {
            ("compute", Colors.SteelBlue, s => s.ComputeMs),
            ("communication", Colors.DarkOrange, s => s.CommunicationMs),
            ("wait", Colors.Crimson, s => s.WaitMs),
            ("other (barrier, shards, coordinator)", Colors.Gray, s => s.OtherMs),
        };
        var ticks = new List<Tick>();
        for (int i = 0; i < runs.Count; i++)
        {
            double bottom = 0;
            foreach (var (_, color, value) in parts)
            {
                double v = value(runs[i].Summary!);
                if (!double.IsFinite(v)) continue;
                plot.Add.Bar(new Bar { Position = i, ValueBase = bottom, Value = bottom + v, FillColor = color, Size = 0.8 });
                bottom += v;
            }
            ticks.Add(new Tick(i, runs[i].Point.Name.Replace('-', '\n')));
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Bottom.TickLabelStyle.FontSize = runs.Count > 12 ? 8 : 11;
        plot.Axes.Margins(bottom: 0);
        foreach (var (label, color, _) in parts) plot.Legend.ManualItems.Add(new LegendItem { LabelText = label, FillColor = color });
        plot.ShowLegend(Edge.Right);
        return plot;
    }
}
