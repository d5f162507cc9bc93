// `eval` reports per-class accuracy and the confusion matrix consistent with its own accuracy; `predict`
// labels IDX, CSV and PNG inputs exactly as a sample-by-sample forward pass of the checkpoint does, and
// refuses an image of the wrong size naming both shapes.
using System.Text.Json;
using DistTrain.Cli;
using DistTrain.Data.Sources;
using DistTrain.Nn;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using SkiaSharp;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class EvalPredictCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"disttrain-predict-{Guid.NewGuid():N}");

    public EvalPredictCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o); Console.SetError(e);
        try { return (Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    /// <summary>A small (1,4,3)-image classifier with seeded random weights, saved as a checkpoint without training.</summary>
    private (string File, Sequential Model) ImageModel()
    {
        var spec = ModelSpec.Parse("""
            {"name":"tiny","input":[1,4,3],"loss":"cross_entropy","layers":[
              {"type":"flatten","name":"flat"},{"type":"dense","out":6,"name":"h"},{"type":"tanh","name":"a"},{"type":"dense","out":3,"name":"o"}]}
            """);
        var model = spec.Build(7);
        var file = Path.Combine(_dir, "tiny.safetensors");
        Checkpoint.Save(file, model.Store, new CheckpointInfo(spec.CanonicalJson, 0, 0, 7));
        return (file, model);
    }

    private static int Forward(Sequential model, float[] sample)
    {
        var x = new Tensor([1, .. model.InputShape]);
        x.CopyFrom(sample);
        var y = model.Forward(x, StepContext.Eval).ToArray();
        int best = 0;
        for (int i = 1; i < y.Length; i++) if (y[i] > y[best]) best = i;
        return best;
    }

    private static JsonElement[] Predictions(string json) =>
        JsonDocument.Parse(json.Trim()).RootElement.GetProperty("predictions").EnumerateArray().ToArray();

    [Fact]
    public void Eval_json_has_per_class_accuracy_and_a_confusion_matrix_that_agree_with_its_accuracy()
    {
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = Run("train", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=400:test-n=200:margin=0.05:seed=2",
            "--epochs", "3", "--batch-size", "20", "--lr", "0.05", "--seed", "4", "--out", run);
        Assert.True(code == 0, err);
        var (ecode, eout, eerr) = Run("eval", "--checkpoint", run, "--json");
        Assert.True(ecode == 0, eerr);
        var e = JsonDocument.Parse(eout.Trim()).RootElement;
        var rows = e.GetProperty("confusion_matrix").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt64()).ToArray()).ToArray();
        Assert.Equal(4, rows.Length);
        long total = rows.Sum(r => r.Sum()), diagonal = Enumerable.Range(0, 4).Sum(c => rows[c][c]);
        Assert.Equal(200, total);
        // Accuracy comes from the trainer's evaluation; the matrix from separate batched predictions.
        Assert.Equal(e.GetProperty("accuracy").GetDouble(), (double)diagonal / total, 12);
        var perClass = e.GetProperty("per_class_accuracy").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        var support = e.GetProperty("class_samples").EnumerateArray().Select(v => v.GetInt64()).ToArray();
        for (int c = 0; c < 4; c++)
        {
            Assert.Equal(rows[c].Sum(), support[c]);
            Assert.Equal((double)rows[c][c] / rows[c].Sum(), perClass[c], 12);
        }

        var (tcode, tout, _) = Run("eval", "--checkpoint", run);
        Assert.Equal(0, tcode);
        Assert.Contains("confusion matrix (rows: true class, columns: predicted class)", tout);
        Assert.Contains("class  samples  accuracy", tout);

        // predict on a CSV of the same test points (with their labels) reaches the same accuracy as eval.
        var (_, test) = DatasetSpec.Parse("synthetic:quadrants:n=400:test-n=200:margin=0.05:seed=2").Load();
        var csv = Path.Combine(_dir, "points.csv");
        File.WriteAllLines(csv, new[] { "x,y,label" }.Concat(Enumerable.Range(0, test.Count).Select(i =>
            FormattableString.Invariant($"{test.Features[2 * i]:R},{test.Features[2 * i + 1]:R},{test.Labels[i]}"))));
        var (pcode, pout, perr) = Run("predict", "--checkpoint", run, "--input", csv, "--json");
        Assert.True(pcode == 0, perr);
        var p = JsonDocument.Parse(pout.Trim()).RootElement;
        Assert.Equal(e.GetProperty("accuracy").GetDouble(), p.GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(200, p.GetProperty("samples").GetInt32());
    }

    [Fact]
    public void A_final_model_without_its_dataset_is_evaluated_on_the_one_its_checkpoints_record()
    {
        var run = Path.Combine(_dir, "run");
        const string data = "synthetic:quadrants:n=200:test-n=60:seed=3";
        var (code, _, err) = Run("train", "--model", "quadrant", "--dataset", data, "--epochs", "2", "--batch-size", "20", "--out", run);
        Assert.True(code == 0, err);
        // As a cluster run writes it: the same weights and spec, no job metadata.
        var file = Path.Combine(run, "model.safetensors");
        var info = Checkpoint.ReadInfo(file);
        var spec = ModelSpec.Parse(info.ModelSpec);
        var model = spec.Build();
        Checkpoint.LoadInto(model.Store, file);
        Checkpoint.Save(file, model.Store, new CheckpointInfo(info.ModelSpec, info.Step, info.Epoch, info.Seed));
        Assert.False(Checkpoint.ReadInfo(file).Extra.ContainsKey("job"));
        var (ecode, eout, eerr) = Run("eval", "--checkpoint", run, "--json");
        Assert.True(ecode == 0, eerr);
        var e = JsonDocument.Parse(eout.Trim()).RootElement;
        Assert.Equal(data, e.GetProperty("dataset").GetString());
        Assert.Equal(60, e.GetProperty("samples").GetInt32());
    }

    [Fact]
    public void Predict_labels_idx_images_as_a_forward_pass_does()
    {
        var (file, model) = ImageModel();
        var rng = new Random(3);
        int n = 9;
        var pixels = new byte[n * 12];
        rng.NextBytes(pixels);
        var idx = Path.Combine(_dir, "images-idx3-ubyte.gz");
        IdxWriter.WriteImages(idx, pixels, n, 4, 3, gzip: true);
        var (code, output, err) = Run("predict", "-c", file, "-i", idx, "--json");
        Assert.True(code == 0, err);
        var preds = Predictions(output);
        Assert.Equal(n, preds.Length);
        for (int s = 0; s < n; s++)
        {
            var sample = pixels.AsSpan(s * 12, 12).ToArray().Select(b => b / 255f).ToArray();
            Assert.Equal(Forward(model, sample), preds[s].GetProperty("class").GetInt32());
            double prob = preds[s].GetProperty("probability").GetDouble();
            Assert.InRange(prob, 1.0 / 3 - 1e-6, 1);
        }
        Assert.False(preds[0].TryGetProperty("label", out _));
    }

    [Fact]
    public void Predict_reads_a_png_as_grey_pixels_and_names_both_shapes_when_the_size_differs()
    {
        var (file, model) = ImageModel();
        var png = Path.Combine(_dir, "x.png");
        var expected = new float[12];
        using (var bmp = new SKBitmap(3, 4))
        {
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 3; x++)
                {
                    byte v = (byte)(20 * (y * 3 + x) + 5);
                    bmp.SetPixel(x, y, new SKColor(v, v, v));
                    expected[y * 3 + x] = v / 255f;
                }
            using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(png, data.ToArray());
        }
        var (code, output, err) = Run("predict", "-c", file, "-i", png, "--json");
        Assert.True(code == 0, err);
        Assert.Equal(Forward(model, expected), Assert.Single(Predictions(output)).GetProperty("class").GetInt32());

        var big = Path.Combine(_dir, "big.png");
        using (var bmp = new SKBitmap(5, 7))
        using (var data = bmp.Encode(SKEncodedImageFormat.Png, 100))
            File.WriteAllBytes(big, data.ToArray());
        var (bcode, _, berr) = Run("predict", "-c", file, "-i", big);
        Assert.Equal(2, bcode);
        Assert.Contains("5×7 pixels (shape (1,7,5))", berr);
        Assert.Contains("takes (1,4,3)", berr);
        Assert.Contains("resize", berr);
    }

    [Fact]
    public void Predict_refuses_a_csv_with_other_columns_and_a_regression_model()
    {
        var (file, _) = ImageModel();
        var csv = Path.Combine(_dir, "wrong.csv");
        File.WriteAllText(csv, "a,b,label\n1,2,0\n");
        var (code, _, err) = Run("predict", "-c", file, "-i", csv);
        Assert.Equal(2, code);
        Assert.Contains("has 2 feature columns", err);
        Assert.Contains("takes (1,4,3), 12 values", err);

        var spec = ModelSpec.Parse("""{"name":"reg","input":[2],"loss":"mse","layers":[{"type":"dense","out":1}]}""");
        var reg = Path.Combine(_dir, "reg.safetensors");
        Checkpoint.Save(reg, spec.Build().Store, new CheckpointInfo(spec.CanonicalJson, 0, 0, 1));
        var (rcode, _, rerr) = Run("predict", "-c", reg, "-i", csv);
        Assert.Equal(2, rcode);
        Assert.Contains("not a classifier", rerr);
    }
}
