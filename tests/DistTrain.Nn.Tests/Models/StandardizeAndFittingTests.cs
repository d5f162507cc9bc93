// The "standardize" step of a spec (a gradient-checked layer that equals Normalization.Apply bit for bit and
// leaves every parameter name alone) and presets fitted to other data shapes and class counts.
using DistTrain.Data;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests.Models;

public class StandardizeAndFittingTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Standardize_backward_matches_finite_differences(int batch) =>
        GradCheck.Layer(() => new Standardize([0.5f, -2f, 10f, 0f, 3f], [0.25f, 4f, 100f, 1f, 2f]), [5], batch);

    [Fact]
    public void Global_standardize_backward_matches_finite_differences() =>
        GradCheck.Layer(() => new Standardize([0.3f], [0.5f]), [2, 3], 2);

    private const string Unnamed = """
        {"input":[3],"loss":"cross_entropy","layers":[{"type":"dense","out":4},{"type":"relu"},{"type":"dense","out":2}]}
        """;

    [Fact]
    public void A_spec_with_standardize_computes_the_model_on_normalized_data()
    {
        var rng = new Random(2);
        var data = new Dataset("d", [3], Enumerable.Range(0, 30).Select(i => (float)(rng.NextDouble() * Math.Pow(10, i % 3))).ToArray(), new int[10], 2);
        var norm = Normalization.FitPerFeature(data);
        var plain = ModelSpec.Parse(Unnamed);
        var fitted = plain.WithStandardize(norm.Mean, norm.Std);
        Assert.Equal(norm.Mean, fitted.StandardizeMean);
        Assert.Equal(norm.Std, fitted.StandardizeStd); // the floats survive the JSON round trip exactly
        Assert.NotEqual(plain.Hash, fitted.Hash);

        var a = plain.Build(5); var b = fitted.Build(5);
        // The step takes no index and no parameters: names and initial weights are those of the plain spec.
        Assert.Equal(a.Store.All.Select(p => p.Name), b.Store.All.Select(p => p.Name));
        Assert.Equal(["0.weight", "0.bias", "2.weight", "2.bias"], b.Store.All.Select(p => p.Name));
        Assert.Equal(a.Store.Values, b.Store.Values);
        Assert.Equal("standardize", b.Layers[0].Name);

        var normalized = norm.Apply(data);
        var x = new Tensor(10, 3); x.CopyFrom(data.Features);
        var xn = new Tensor(10, 3); xn.CopyFrom(normalized.Features);
        Assert.Equal(a.Forward(xn, StepContext.Eval).ToArray(), b.Forward(x, StepContext.Eval).ToArray());
    }

    [Theory]
    [InlineData("""{"mean":[1,2,3],"std":[1,0,1]}""", "standardize.std[1]: must be a positive number, not 0.")]
    [InlineData("""{"mean":[1,2],"std":[1,1]}""", "standardize.mean: must be an array of 3 numbers (one per element of input (3)) or of one, not 2 numbers.")]
    [InlineData("""{"mean":[1,2,3]}""", "standardize.std: missing")]
    [InlineData("""{"mean":[1,2,3],"std":[1,1,1],"scale":2}""", "standardize.scale: unknown field")]
    [InlineData("""{"mean":[1,"a",3],"std":[1,1,1]}""", "standardize.mean[1]: must be a finite number, not \"a\".")]
    [InlineData("""[1]""", "standardize: must be an object")]
    public void Standardize_errors_name_the_field(string standardize, string message)
    {
        var json = Unnamed.Trim()[..^1] + ",\"standardize\":" + standardize + "}";
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse(json));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void Presets_on_their_own_data_are_unchanged()
    {
        foreach (var name in Presets.Names)
        {
            var spec = Presets.Spec(name);
            int classes = spec.Loss == "cross_entropy" ? spec.Output[0] : 10;
            Assert.Same(spec, spec.FitData(spec.Input, classes));
        }
        // 784 values per sample (a CSV of pixels) keep the image input and reshape at load.
        var cnn = Presets.Spec("cnn");
        Assert.Same(cnn, cnn.FitData([784], 10));
    }

    [Fact]
    public void Mlp_takes_a_table_of_any_width_and_class_count()
    {
        var spec = Presets.Spec("mlp").FitData([64], 3);
        Assert.Equal([64], spec.Input);
        Assert.Equal([3], spec.Output);
        var model = spec.Build();
        Assert.Equal([256, 64], model.Store.All.Single(p => p.Name == "l1.weight").Shape);
        Assert.Equal([3, 128], model.Store.All.Single(p => p.Name == "l3.weight").Shape);
    }

    [Fact]
    public void Image_presets_follow_the_image_size_channels_and_classes()
    {
        var cnn = Presets.Spec("cnn").FitData([3, 32, 32], 5);
        Assert.Equal([5], cnn.Output);
        Assert.Equal([3, 32, 32], cnn.Layers[0].InputShape);
        Assert.Equal([64 * 8 * 8], cnn.Layers.Single(l => l.Type == "flatten").OutputShape); // flatten after two 2× pools of 32×32

        var resnet = Presets.Spec("resnet").FitData([1, 32, 32], 4);
        var pool = resnet.Layers.Single(l => l.Type == "avgpool2d");
        Assert.Equal(8, pool.Int("kernel", 0)); // still a global pool: 32 → 16 → 8
        Assert.Equal([64, 1, 1], pool.OutputShape);
        Assert.Equal([4], resnet.Output);

        var lstm = Presets.Spec("lstm").FitData([1, 20, 12], 7);
        Assert.Equal([20, 12], lstm.Layers[0].OutputShape);
        Assert.Equal([7], lstm.Output);
        var seq = Presets.Spec("gru").FitData([30], 2);
        Assert.Equal([30, 1], seq.Layers[0].OutputShape);

        var ae = Presets.Spec("autoencoder").FitData([1, 10, 10], 3);
        Assert.Equal([100], ae.Output); // rebuilds its input, not a class count
    }

    [Fact]
    public void A_preset_that_cannot_take_the_data_names_the_layer()
    {
        var e = Assert.Throws<ModelSpecException>(() => Presets.Spec("cnn").FitData([64], 3));
        Assert.Equal("layers[0]", e.Path);
        Assert.Contains("conv2d needs a (C,H,W) image input but gets (64)", e.Message);
        var r = Assert.Throws<ModelSpecException>(() => Presets.Spec("resnet").FitData([1, 32, 16], 3));
        Assert.Contains("square feature map", r.Message);
    }
}
