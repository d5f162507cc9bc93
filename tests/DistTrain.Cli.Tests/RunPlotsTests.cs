// The plots are really drawn: each PNG is decoded and its pixels counted — the runs' colours inside the
// data area and dark text in the title band — against the same figure with nothing to draw. Plus the
// metrics reader (last record wins, missing train loss from the steps) and the `plot` command end to end.
using DistTrain.Cli;
using DistTrain.Cli.Plotting;
using DistTrain.Nn.Evaluation;
using ScottPlot;
using SkiaSharp;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class RunPlotsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"disttrain-plot-{Guid.NewGuid():N}");

    public RunPlotsTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Metrics(int epochs, double scale, bool breakdown = false)
    {
        var sb = new System.Text.StringBuilder();
        for (int e = 0; e < epochs; e++)
        {
            for (int s = 0; s < 5; s++)
            {
                long step = e * 5 + s;
                var extra = breakdown ? ",\"compute_ms\":12.5,\"communication_ms\":4,\"wait_ms\":1.5" : "";
                sb.AppendLine($"{{\"kind\":\"step\",\"step\":{step},\"epoch\":{e},\"loss\":{scale * (2.0 - 0.05 * step)},\"samples\":32,\"step_s\":0.01{extra}}}");
            }
            sb.AppendLine($"{{\"kind\":\"epoch\",\"epoch\":{e},\"step\":{e * 5 + 4},\"train_loss\":{scale * (1.8 - 0.25 * e)},\"train_accuracy\":{0.5 + 0.05 * e}," +
                          $"\"test_loss\":{scale * (1.9 - 0.2 * e)},\"test_accuracy\":{0.45 + 0.05 * e},\"seconds\":1,\"samples\":160}}");
        }
        return sb.ToString();
    }

    private static RunMetrics Run(string name, int epochs, double scale, bool breakdown = false) =>
        RunMetrics.Parse(new StringReader(Metrics(epochs, scale, breakdown)), name + ".jsonl", name);

    private string Render(Plot plot, string file)
    {
        var path = RunPlots.SavePng(plot, Path.Combine(_dir, file));
        Assert.True(new FileInfo(path).Length > 1000);
        return path;
    }

    /// <summary>Pixels in the rectangle for which <paramref name="match"/> holds, counted in the decoded PNG.</summary>
    private static int Count(string png, PixelRect r, Func<SKColor, bool> match)
    {
        using var bmp = SKBitmap.Decode(png);
        Assert.Equal(RunPlots.Width, bmp.Width);
        Assert.Equal(RunPlots.Height, bmp.Height);
        int n = 0;
        for (int y = (int)Math.Max(0, r.Top); y < (int)Math.Min(bmp.Height, r.Bottom); y++)
            for (int x = (int)Math.Max(0, r.Left); x < (int)Math.Min(bmp.Width, r.Right); x++)
                if (match(bmp.GetPixel(x, y))) n++;
        return n;
    }

    private static bool Near(SKColor c, Color want, int tol = 40) =>
        Math.Abs(c.Red - want.R) <= tol && Math.Abs(c.Green - want.G) <= tol && Math.Abs(c.Blue - want.B) <= tol;

    private static bool Dark(SKColor c) => c.Red + c.Green + c.Blue < 3 * 110;

    [Fact]
    public void Loss_plot_draws_every_run_in_its_colour_and_the_title()
    {
        var palette = new ScottPlot.Palettes.Category10();
        var full = RunPlots.Loss([Run("a", 4, 1), Run("b", 4, 0.5)]);
        var png = Render(full, "loss.png");
        var data = full.RenderManager.LastRender.DataRect;
        int blue = Count(png, data, c => Near(c, palette.GetColor(0))), orange = Count(png, data, c => Near(c, palette.GetColor(1)));

        // The same figure with no runs: axes and grid only, nothing in either run colour.
        var empty = RunPlots.Loss([RunMetrics.Parse(new StringReader(""), "none", "none")]);
        var emptyPng = Render(empty, "empty.png");
        var emptyData = empty.RenderManager.LastRender.DataRect;
        Assert.Equal(0, Count(emptyPng, emptyData, c => Near(c, palette.GetColor(0))));
        // Two 2-px lines (train, test) across most of a ~650-px-wide area: well over a thousand pixels each.
        Assert.True(blue > 1000, $"run a: {blue} pixels of its colour in the data area");
        Assert.True(orange > 1000, $"run b: {orange} pixels of its colour in the data area");

        // Title band: above the data area, between its left and right edges. A font must be installed.
        var band = new PixelRect(data.Left, data.Right, data.Top, 0);
        int titled = Count(png, band, Dark);
        var untitled = new Plot();
        var untitledPng = Render(untitled, "untitled.png");
        var untitledData = untitled.RenderManager.LastRender.DataRect;
        int none = Count(untitledPng, new PixelRect(untitledData.Left, untitledData.Right, untitledData.Top, 0), Dark);
        Assert.True(titled > 150 && none < 20, $"title band: {titled} dark pixels with the title, {none} without (is fonts-dejavu-core installed?)");
    }

    [Fact]
    public void Step_time_stacks_the_cluster_breakdown_to_its_sum()
    {
        var plot = RunPlots.StepTime([Run("local", 2, 1), Run("cluster", 2, 1, breakdown: true)]);
        var png = Render(plot, "steps.png");
        var data = plot.RenderManager.LastRender.DataRect;
        Assert.True(Count(png, data, c => Near(c, Colors.SteelBlue, 20)) > 2000);
        Assert.True(Count(png, data, c => Near(c, Colors.DarkOrange, 20)) > 500);
        Assert.True(Count(png, data, c => Near(c, Colors.Crimson, 20)) > 200);
        // The stack's top sits at compute + communication + wait = 18 ms.
        var limits = plot.Axes.GetLimits();
        Assert.InRange(limits.Top, 18, 18 * 1.3);
    }

    [Fact]
    public void Confusion_matrix_shades_the_diagonal_and_writes_counts()
    {
        var m = new ConfusionMatrix(3);
        for (int c = 0; c < 3; c++) for (int i = 0; i < 40; i++) m.Add(c, c);
        m.Add(0, 1); m.Add(2, 0);
        var plot = RunPlots.Confusion(m, ["cat", "dog", "owl"]);
        var png = Render(plot, "confusion.png");
        using var bmp = SKBitmap.Decode(png);
        // Sample each cell a little off its centre (the count's text sits at the centre).
        SKColor At(int actual, int predicted)
        {
            var px = plot.GetPixel(new Coordinates(predicted - 0.3, 2 - actual + 0.3));
            return bmp.GetPixel((int)px.X, (int)px.Y);
        }
        int Lum(SKColor c) => c.Red + c.Green + c.Blue;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 3; p++)
                if (p != c) Assert.True(Lum(At(c, c)) < Lum(At(c, p)) - 200, $"cell ({c},{c}) should be darker than ({c},{p})");
        var data = plot.RenderManager.LastRender.DataRect;
        Assert.True(Count(png, new PixelRect(data.Left, data.Right, data.Top, 0), Dark) > 150, "title text");
    }

    [Fact]
    public void Metrics_reader_keeps_the_last_record_and_fills_a_missing_train_loss_from_the_steps()
    {
        var text = """
            {"kind":"step","step":0,"epoch":0,"loss":3,"step_s":0.1}
            {"kind":"step","step":1,"epoch":0,"loss":1,"step_s":0.1}
            {"kind":"epoch","epoch":0,"step":1,"train_loss":null,"test_loss":0.9,"test_accuracy":0.7}
            {"kind":"run","mode":"sync"}
            {"kind":"epoch","epoch":0,"step":1,"train_loss":null,"test_loss":0.8,"test_accuracy":0.75}
            {"kind":"step","step":2,"epoch":1,"loss":0.5
            """;
        var run = RunMetrics.Parse(new StringReader(text), "m.jsonl", "r");
        var e = Assert.Single(run.Epochs);
        Assert.Equal(2.0, e.TrainLoss); // (3 + 1) / 2
        Assert.Equal(0.8, e.TestLoss);
        Assert.Equal(0.75, e.TestAccuracy);
        Assert.Equal(2, run.Steps.Count); // the cut-off last line of a run still writing is skipped
        Assert.Throws<FormatException>(() => RunMetrics.Parse(new StringReader("{\"kind\":\nx\n"), "bad.jsonl", "r"));
    }

    [Fact]
    public void Plot_command_writes_pngs_for_several_runs()
    {
        foreach (var name in new[] { "one", "two" })
        {
            Directory.CreateDirectory(Path.Combine(_dir, name));
            File.WriteAllText(Path.Combine(_dir, name, "metrics.jsonl"), Metrics(3, name == "one" ? 1 : 0.7));
        }
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, err) = (new StringWriter(), new StringWriter());
        Console.SetOut(o); Console.SetError(err);
        int code;
        try { code = Program.Main(["plot", Path.Combine(_dir, "one"), Path.Combine(_dir, "two"), "--out", Path.Combine(_dir, "out")]); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
        Assert.True(code == 0, err.ToString());
        foreach (var f in new[] { "loss.png", "accuracy.png", "step_time.png" })
            Assert.True(File.Exists(Path.Combine(_dir, "out", f)), f);
        Assert.Contains("no confusion matrix", err.ToString()); // no checkpoint in these folders
    }
}
