// PNG plots of training runs with ScottPlot 5: loss and accuracy per epoch (several runs overlaid, train
// solid and test dashed in one colour per run), the step-time breakdown, and a classifier's confusion
// matrix. Text needs a font on the machine (Debian's fonts-dejavu-core, installed by scripts/setup.sh).
using System.Globalization;
using DistTrain.Cli.Evaluation;
using DistTrain.Nn.Evaluation;
using ScottPlot;

namespace DistTrain.Cli.Plotting;

public static class RunPlots
{
    public const int Width = 900, Height = 560;

    /// <summary>
    /// Writes the plots of one finished run into its own folder: loss.png, accuracy.png (classifiers),
    /// step_time.png and, when <paramref name="confusion"/> is given (or the folder holds a classifier's
    /// model.safetensors, which is then evaluated on its dataset's test split), confusion.png.
    /// What `disttrain train` can call at the end of a run. Returns the files written.
    /// </summary>
    public static IReadOnlyList<string> WriteForRun(string runDir, ConfusionMatrix? confusion = null, IReadOnlyList<string>? classNames = null)
    {
        confusion ??= RunEvaluation.TryConfusion(runDir, out classNames);
        return Write([RunMetrics.Load(runDir)], runDir, confusion, classNames);
    }

    /// <summary>
    /// The end of `disttrain train`: draws the run's plots into its folder and says where; a plot that cannot be drawn
    /// (no font, an odd metrics file) is reported in one line and never fails a run whose model is already saved.
    /// </summary>
    public static void AfterRun(string runDir, TextWriter console)
    {
        try
        {
            var files = WriteForRun(runDir);
            console.WriteLine($"plots:     {string.Join(", ", files.Select(System.IO.Path.GetFileName))} in {System.IO.Path.GetFullPath(runDir)}");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            console.WriteLine($"plots: not drawn ({e.GetType().Name}: {e.Message}); the model and metrics are saved; try `disttrain plot {runDir}`");
        }
    }

    /// <summary>Writes loss.png, accuracy.png (when any run has an accuracy), step_time.png (when any run has
    /// step times) and confusion.png (when given) into <paramref name="outDir"/>; returns the files written.</summary>
    public static IReadOnlyList<string> Write(IReadOnlyList<RunMetrics> runs, string outDir, ConfusionMatrix? confusion = null, IReadOnlyList<string>? classNames = null)
    {
        if (runs.Count == 0) throw new ArgumentException("Give at least one run to plot.", nameof(runs));
        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        void Save(Plot plot, string file) => written.Add(SavePng(plot, System.IO.Path.Combine(outDir, file)));
        Save(Loss(runs), "loss.png");
        if (runs.Any(r => r.Epochs.Any(e => double.IsFinite(e.TrainAccuracy) || double.IsFinite(e.TestAccuracy)))) Save(Accuracy(runs), "accuracy.png");
        if (runs.Any(r => r.Steps.Any(s => double.IsFinite(s.Seconds)))) Save(StepTime(runs), "step_time.png");
        if (confusion is not null) Save(Confusion(confusion, classNames), "confusion.png");
        return written;
    }

    /// <summary>Saves <paramref name="plot"/> as a PNG of the standard size; returns the path.</summary>
    public static string SavePng(Plot plot, string path)
    {
        plot.SavePng(path, Width, Height);
        return path;
    }

    /// <summary>Train (solid) and test (dashed) loss per epoch, one colour per run.</summary>
    public static Plot Loss(IReadOnlyList<RunMetrics> runs) =>
        PerEpoch(runs, "Loss per epoch", "loss", e => e.TrainLoss, e => e.TestLoss);

    /// <summary>Train (solid) and test (dashed) accuracy per epoch, in percent.</summary>
    public static Plot Accuracy(IReadOnlyList<RunMetrics> runs) =>
        PerEpoch(runs, "Accuracy per epoch", "accuracy (%)", e => 100 * e.TrainAccuracy, e => 100 * e.TestAccuracy);

    static Plot PerEpoch(IReadOnlyList<RunMetrics> runs, string title, string yLabel, Func<EpochPoint, double> train, Func<EpochPoint, double> test)
    {
        var plot = NewPlot(title, "epoch", yLabel);
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < runs.Count; i++)
        {
            var color = palette.GetColor(i);
            // Epochs are 0-based in metrics.jsonl; the axis counts completed epochs from 1.
            AddLine(plot, runs[i].Epochs, e => e.Epoch + 1, train, color, $"{runs[i].Name} train", LinePattern.Solid);
            AddLine(plot, runs[i].Epochs, e => e.Epoch + 1, test, color, $"{runs[i].Name} test", LinePattern.Dashed);
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(Edge.Right);
        return plot;
    }

    static void AddLine(Plot plot, IReadOnlyList<EpochPoint> points, Func<EpochPoint, double> x, Func<EpochPoint, double> y, Color color, string label, LinePattern pattern)
    {
        var kept = points.Where(p => double.IsFinite(y(p))).ToList();
        if (kept.Count == 0) return;
        var line = plot.Add.Scatter(kept.Select(x).ToArray(), kept.Select(y).ToArray(), color);
        line.LegendText = label;
        line.LineWidth = 2;
        line.MarkerSize = kept.Count == 1 ? 8 : 5;
        line.LinePattern = pattern;
    }

    /// <summary>Mean time per step of each run: the wall-clock step, and for cluster runs the workers' compute,
    /// communication and wait time summed over the step's micro-batches, stacked. The first step (JIT, first
    /// allocations) is left out when there are others.</summary>
    public static Plot StepTime(IReadOnlyList<RunMetrics> runs)
    {
        var plot = NewPlot("Step time breakdown (mean per step)", "", "milliseconds");
        var parts = new (string Label, Color Color, Func<StepPoint, double> Value)[]
        {
            ("compute", Colors.SteelBlue, s => s.ComputeMs),
            ("communication", Colors.DarkOrange, s => s.CommunicationMs),
            ("wait", Colors.Crimson, s => s.WaitMs),
        };
        var wallColor = Colors.Gray;
        var ticks = new List<Tick>();
        bool anyParts = false;
        for (int i = 0; i < runs.Count; i++)
        {
            var steps = runs[i].Steps.Count > 1 ? runs[i].Steps.Skip(1).ToList() : runs[i].Steps.ToList();
            double wall = 1000 * Mean(steps, s => s.Seconds);
            double x = 3 * i;
            if (double.IsFinite(wall)) plot.Add.Bar(new Bar { Position = x, Value = wall, FillColor = wallColor, Size = 0.9 });
            double bottom = 0;
            foreach (var (_, color, value) in parts)
            {
                double v = Mean(steps, value);
                if (!double.IsFinite(v)) continue;
                anyParts = true;
                plot.Add.Bar(new Bar { Position = x + 1, ValueBase = bottom, Value = bottom + v, FillColor = color, Size = 0.9 });
                bottom += v;
            }
            ticks.Add(new Tick(bottom > 0 ? x + 0.5 : x, runs[i].Name));
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Margins(bottom: 0);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "step (wall clock)", FillColor = wallColor });
        if (anyParts)
            foreach (var (label, color, _) in parts)
                plot.Legend.ManualItems.Add(new LegendItem { LabelText = $"{label} (workers, summed)", FillColor = color });
        plot.ShowLegend(Edge.Right);
        return plot;
    }

    static double Mean(List<StepPoint> steps, Func<StepPoint, double> value)
    {
        double sum = 0; int n = 0;
        foreach (var s in steps)
            if (double.IsFinite(value(s))) { sum += value(s); n++; }
        return n == 0 ? double.NaN : sum / n;
    }

    /// <summary>Rows: true class; columns: predicted class. Cells shaded by the fraction of their row, with the count written in.</summary>
    public static Plot Confusion(ConfusionMatrix m, IReadOnlyList<string>? classNames = null)
    {
        int k = m.Classes;
        var plot = NewPlot(string.Create(CultureInfo.InvariantCulture, $"Confusion matrix ({m.Total:N0} samples, accuracy {100 * m.Accuracy:F2}%)"),
            "predicted class", "true class");
        var colormap = new ScottPlot.Colormaps.Blues();
        for (int a = 0; a < k; a++)
        {
            long support = m.Support(a);
            double y = k - 1 - a; // row 0 at the top, as the matrix is read
            for (int p = 0; p < k; p++)
            {
                double frac = support == 0 ? 0 : (double)m[a, p] / support;
                var cell = plot.Add.Rectangle(p - 0.5, p + 0.5, y - 0.5, y + 0.5);
                cell.FillColor = colormap.GetColor(1 - frac); // this colormap runs from dark to light
                cell.LineColor = Colors.White;
                if (k <= 20)
                {
                    var text = plot.Add.Text(m[a, p].ToString(CultureInfo.InvariantCulture), p, y);
                    text.LabelAlignment = Alignment.MiddleCenter;
                    text.LabelFontSize = k <= 10 ? 13 : 9;
                    text.LabelBold = a == p;
                    text.LabelFontColor = frac > 0.5 ? Colors.White : Colors.Black;
                }
            }
        }
        string Name(int c) => classNames is not null && c < classNames.Count ? classNames[c] : c.ToString(CultureInfo.InvariantCulture);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, k).Select(c => new Tick(c, Name(c))).ToArray());
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, k).Select(c => new Tick(k - 1 - c, Name(c))).ToArray());
        plot.Axes.SetLimits(-0.5, k - 0.5, -0.5, k - 0.5);
        plot.Axes.Bottom.TickLabelStyle.FontSize = 11;
        plot.Axes.Left.TickLabelStyle.FontSize = 11;
        return plot;
    }

    internal static Plot NewPlot(string title, string xLabel, string yLabel)
    {
        var plot = new Plot();
        plot.Title(title);
        if (xLabel.Length > 0) plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        return plot;
    }
}
