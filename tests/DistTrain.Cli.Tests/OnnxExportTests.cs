// ONNX export checked by running the file in ONNX Runtime on real inputs: every exported preset (and specs
// with batch norm in eval mode, standardization, GELU, layer norm and dense over sequences) gives our own
// eval-mode outputs within 1e-5.
using DistTrain.Cli.Export;
using DistTrain.Nn;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;
using Tensor = DistTrain.Tensors.Tensor;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class OnnxExportTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"disttrain-onnx-{Guid.NewGuid():N}");

    public OnnxExportTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Random weights, and random running statistics for every batch norm (so eval mode is not the identity).</summary>
    private static Sequential Model(ModelSpec spec, int seed)
    {
        var model = spec.Build((ulong)seed);
        var rng = new Random(seed);
        foreach (var p in model.Store.All)
        {
            var v = p.Value.Span;
            if (p.LocalName == "running_var") for (int i = 0; i < v.Length; i++) v[i] = 0.5f + (float)rng.NextDouble();
            else if (p.LocalName is "running_mean" or "bias") for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() - 0.5) * 0.4f;
            else if (p.LocalName == "weight" && p.Shape.Length == 1) for (int i = 0; i < v.Length; i++) v[i] = 0.5f + (float)rng.NextDouble();
        }
        return model;
    }

    private void AssertSameOutputs(Sequential model, string name, int batch = 3)
    {
        var file = Path.Combine(_dir, name + ".onnx");
        OnnxExport.Write(model, file, name);
        var rng = new Random(17);
        var x = new Tensor([batch, .. model.InputShape]);
        var xs = x.Span;
        for (int i = 0; i < xs.Length; i++) xs[i] = (float)rng.NextDouble();
        var ours = model.Forward(x, StepContext.Eval).ToArray();

        using var session = new InferenceSession(file);
        var input = new DenseTensor<float>(x.ToArray(), new int[] { batch }.Concat(model.InputShape).ToArray());
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("input", input) });
        var output = results.Single(r => r.Name == "output").AsTensor<float>();
        Assert.Equal(new int[] { batch }.Concat(model.OutputShape).ToArray(), output.Dimensions.ToArray());
        var theirs = output.ToArray();
        Assert.Equal(ours.Length, theirs.Length);
        double worst = 0;
        for (int i = 0; i < ours.Length; i++) worst = Math.Max(worst, Math.Abs(ours[i] - theirs[i]) / Math.Max(1, Math.Abs(ours[i])));
        Assert.True(worst <= 1e-5, $"{name}: largest difference {worst:E2} (relative above 1)");
        Assert.True(ours.Any(v => v != 0), "a model whose outputs are all zero proves nothing");
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    [InlineData("resnet")]
    [InlineData("autoencoder")]
    [InlineData("quadrant")]
    [InlineData("rnn")]
    [InlineData("lstm")]
    [InlineData("gru")]
    public void Preset_runs_in_onnx_runtime_with_our_outputs(string preset) =>
        AssertSameOutputs(Model(Presets.Spec(preset), 3), preset, batch: preset == "resnet" ? 2 : 3);

    [Fact]
    public void Batch_norm_standardize_gelu_layer_norm_and_sequence_dense_match()
    {
        var spec = ModelSpec.Parse("""
            {"name":"mix","input":[1,6,6],"loss":"cross_entropy","layers":[
              {"type":"conv2d","out":4,"kernel":3,"padding":1,"bias":false},{"type":"batchnorm2d"},{"type":"leaky_relu","slope":0.1},
              {"type":"avgpool2d","kernel":2},{"type":"reshape","shape":[4,9]},{"type":"layernorm"},{"type":"gelu"},
              {"type":"flatten"},{"type":"dropout","p":0.3},{"type":"dense","out":8},{"type":"batchnorm1d"},{"type":"sigmoid"},
              {"type":"dense","out":3},{"type":"tanh"},{"type":"softmax"}]}
            """).WithStandardize(Enumerable.Range(0, 36).Select(i => 0.01f * i).ToArray(), Enumerable.Range(0, 36).Select(i => 0.5f + 0.02f * i).ToArray());
        AssertSameOutputs(Model(spec, 5), "mix");
        // Dense over the last dimension of a sequence (MatMul with the transposed weight).
        var seq = new Sequential([4, 9], [("d", (Layer)new DistTrain.Nn.Layers.Dense(9, 5)), ("a", new DistTrain.Nn.Layers.Tanh())], 2);
        AssertSameOutputs(seq, "sequence_dense");
        // Stacked recurrent layers that return their whole sequence.
        var stacked = ModelSpec.Parse("""
            {"input":[5,3],"layers":[{"type":"lstm","hidden":4,"return_sequences":true},{"type":"gru","hidden":3,"return_sequences":true},
              {"type":"rnn","hidden":2,"return_sequences":true},{"type":"flatten"}]}
            """);
        AssertSameOutputs(Model(stacked, 8), "stacked_recurrent");
    }

    [Fact]
    public void Export_command_writes_a_file_and_refuses_an_unsupported_layer_by_name()
    {
        var spec = Presets.Spec("quadrant");
        var ckpt = Path.Combine(_dir, "q.safetensors");
        Checkpoint.Save(ckpt, Model(spec, 1).Store, new CheckpointInfo(spec.CanonicalJson, 0, 0, 1));
        var onnx = Path.Combine(_dir, "q.onnx");
        var (code, output, err) = EvalPredictCommandTests.Run("export", "--checkpoint", ckpt, "--onnx", onnx);
        Assert.True(code == 0, err);
        Assert.Contains("ONNX opset 17", output);
        using (var session = new InferenceSession(onnx)) Assert.Equal("input", session.InputMetadata.Keys.Single());

        var tanhGelu = new Sequential([3], [("h", (Layer)new DistTrain.Nn.Layers.Dense(3, 4)), ("act", new DistTrain.Nn.Layers.GELU("tanh"))]);
        var e = Assert.Throws<ArgumentException>(() => OnnxExport.Write(tanhGelu, Path.Combine(_dir, "g.onnx")));
        Assert.Contains("Cannot export layer act", e.Message);
        Assert.False(File.Exists(Path.Combine(_dir, "g.onnx")));
    }
}
