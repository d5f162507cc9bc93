// `--model mlp` on a CSV table just works: the preset takes the table's width and class count, and a
// per-feature standardization fitted on the training rows is stored in the checkpoint's spec and applied by
// eval and predict. On columns whose scales differ by 10^5 it is what makes the model learn.
using System.Globalization;
using System.Text.Json;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class TabularTrainingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"disttrain-tab-{Guid.NewGuid():N}");

    public TabularTrainingTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => EvalPredictCommandTests.Run(args);

    /// <summary>3 classes told apart by two small-scale columns (0.01 per class step); ten columns of noise at scale 1000.</summary>
    private static (string Csv, double[][] Rows) Table(string dir, int n = 600)
    {
        var rng = new Random(9);
        double Gauss() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var rows = new double[n][];
        var lines = new List<string> { string.Join(",", Enumerable.Range(0, 12).Select(j => $"f{j}").Append("label")) };
        for (int i = 0; i < n; i++)
        {
            int c = i % 3;
            var r = new double[13];
            r[0] = 0.01 * (c + 0.15 * Gauss());
            r[1] = 0.01 * ((c == 1 ? 1 : 0) + 0.15 * Gauss());
            for (int j = 2; j < 12; j++) r[j] = 1000 * Gauss() + 50 * j;
            r[12] = c;
            rows[i] = r;
            lines.Add(string.Join(",", r.Select((v, j) => j == 12 ? ((int)v).ToString(CultureInfo.InvariantCulture) : ((float)v).ToString("R", CultureInfo.InvariantCulture))));
        }
        var csv = Path.Combine(dir, "table.csv");
        File.WriteAllLines(csv, lines);
        return (csv, rows);
    }

    private double TrainAndEval(string csv, string outDir, string standardize)
    {
        var (code, output, err) = Run("train", "--model", "mlp", "--dataset", $"csv:{csv}", "--epochs", "6", "--batch-size", "32",
            "--standardize", standardize, "--seed", "3", "--out", outDir);
        Assert.True(code == 0, err + output);
        var (ecode, eout, eerr) = Run("eval", "--checkpoint", outDir, "--json");
        Assert.True(ecode == 0, eerr);
        return JsonDocument.Parse(eout.Trim()).RootElement.GetProperty("accuracy").GetDouble();
    }

    [Fact]
    public void Mlp_on_a_wide_scale_csv_is_fitted_standardized_and_evaluated_with_its_stored_statistics()
    {
        var (csv, rows) = Table(_dir);
        var run = Path.Combine(_dir, "std");
        double standardized = TrainAndEval(csv, run, "auto");

        var spec = ModelSpec.Parse(Checkpoint.ReadInfo(Path.Combine(run, "model.safetensors")).ModelSpec);
        Assert.Equal([12], spec.Input);
        Assert.Equal([3], spec.Output);
        // The stored statistics are those of the training rows only: the 80% the fixed-key holdout keeps.
        var (train, test) = Data.Sources.DatasetSpec.Parse($"csv:{csv}").Load();
        Assert.Equal(480, train.Count);
        var mean = spec.StandardizeMean!; var std = spec.StandardizeStd!;
        for (int j = 0; j < 12; j++)
        {
            double m = 0, v = 0;
            for (int s = 0; s < train.Count; s++) m += train.Features[s * 12 + j];
            m /= train.Count;
            for (int s = 0; s < train.Count; s++) v += Math.Pow(train.Features[s * 12 + j] - m, 2);
            double sd = Math.Sqrt(v / train.Count);
            Assert.Equal(m, mean[j], Math.Max(1e-6, Math.Abs(m) * 1e-5));
            Assert.Equal(sd, std[j], sd * 1e-5);
        }

        double raw = TrainAndEval(csv, Path.Combine(_dir, "raw"), "none");
        Assert.True(standardized >= 0.9, $"standardized accuracy {standardized}");
        Assert.True(standardized > raw + 0.15, $"standardized {standardized} vs raw {raw}");

        // predict on the raw CSV applies the stored standardization: the same accuracy on the held-out rows.
        var testCsv = Path.Combine(_dir, "test.csv");
        File.WriteAllLines(testCsv, new[] { File.ReadLines(csv).First() }.Concat(Enumerable.Range(0, test.Count).Select(s =>
            string.Join(",", test.Features.AsSpan(s * 12, 12).ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)).Append(test.Labels[s].ToString(CultureInfo.InvariantCulture))))));
        var (pcode, pout, perr) = Run("predict", "--checkpoint", run, "--input", testCsv, "--json");
        Assert.True(pcode == 0, perr);
        Assert.Equal(standardized, JsonDocument.Parse(pout.Trim()).RootElement.GetProperty("accuracy").GetDouble(), 12);
    }

    [Fact]
    public void A_preset_that_cannot_take_a_table_says_which_layer_and_what_to_use()
    {
        var (csv, _) = Table(_dir, 30);
        var (code, _, err) = Run("train", "--model", "cnn", "--dataset", $"csv:{csv}", "--epochs", "1", "--out", Path.Combine(_dir, "cnn"));
        Assert.Equal(2, code);
        Assert.Contains("preset cnn does not fit dataset csv:", err);
        Assert.Contains("(samples of shape (12), 3 classes)", err);
        Assert.Contains("layers[0]: conv2d needs a (C,H,W) image input but gets (12)", err);
        Assert.Contains("mlp takes any shape", err);
        var (scode, _, serr) = Run("train", "--model", "mlp", "--dataset", $"csv:{csv}", "--standardize", "zscore", "--out", Path.Combine(_dir, "x"));
        Assert.Equal(2, scode);
        Assert.Contains("--standardize must be one of auto, per-feature, none", serr);
    }
}
