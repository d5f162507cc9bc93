// Model spec parsing: valid specs give the inferred shapes and a stable hash; every kind of mistake
// gives a ModelSpecException whose path names the offending JSON field.
using DistTrain.Nn.Models;
using Xunit;

namespace DistTrain.Nn.Tests.Models;

public class ModelSpecTests
{
    private const string Cnn = """
        {"name":"t","input":[1,28,28],"loss":"cross_entropy","layers":[
          {"type":"conv2d","out":8,"kernel":3,"padding":1,"init":"he","activation":"relu"},
          {"type":"maxpool2d","kernel":2},
          {"type":"conv2d","out":4,"kernel":5,"stride":2},
          {"type":"flatten"},
          {"type":"dropout","p":0.25},
          {"type":"dense","out":10,"init":"normal","init_scale":0.02}]}
        """;

    [Fact]
    public void Valid_spec_infers_every_shape()
    {
        var s = ModelSpec.Parse(Cnn);
        Assert.Equal([1, 28, 28], s.Input);
        Assert.Equal([8, 28, 28], s.Layers[0].OutputShape);
        Assert.Equal([8, 14, 14], s.Layers[1].OutputShape);
        Assert.Equal([4, 5, 5], s.Layers[2].OutputShape);     // (14 - 5)/2 + 1
        Assert.Equal([100], s.Layers[3].OutputShape);
        Assert.Equal([10], s.Output);
        Assert.Equal("cross_entropy", s.Loss);
    }

    [Fact]
    public void Built_model_has_the_spec_shapes_and_an_activation_layer_per_activation_field()
    {
        var m = ModelSpec.Parse(Cnn).Build(seed: 3);
        Assert.Equal(7, m.Layers.Count);                       // conv, relu (from "activation"), pool, conv, flatten, dropout, dense
        Assert.Equal([10], m.OutputShape);
        Assert.Equal(8 * 9 + 8 + 4 * 8 * 25 + 4 + 100 * 10 + 10, m.ParameterCount);
        Assert.Contains(m.Store.All, p => p.Name == "0.weight");
        Assert.Contains(m.Store.All, p => p.Name == "6.bias");
    }

    [Fact]
    public void Same_seed_same_weights_other_seed_other_weights()
    {
        var spec = ModelSpec.Parse(Cnn);
        Assert.Equal(spec.Build(5).Store.Values, spec.Build(5).Store.Values);
        Assert.NotEqual(spec.Build(5).Store.Values, spec.Build(6).Store.Values);
    }

    [Fact]
    public void Init_zeros_gives_zero_weights()
    {
        var m = ModelSpec.Parse("""{"input":[3],"layers":[{"type":"dense","out":2,"init":"zeros","bias":false}]}""").Build();
        Assert.All(m.Store.Values, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Hash_ignores_whitespace_key_order_and_number_spelling_but_not_content()
    {
        var a = ModelSpec.Parse("""{"input":[2],"loss":"cross_entropy","layers":[{"type":"dense","out":4}]}""");
        var b = ModelSpec.Parse("""
            { "layers": [ { "out": 4.0, "type": "dense" } ],
              "loss": "cross_entropy", "input": [ 2 ] }
            """);
        var c = ModelSpec.Parse("""{"input":[2],"loss":"cross_entropy","layers":[{"type":"dense","out":5}]}""");
        Assert.Equal(a.Hash, b.Hash);
        Assert.Equal(a.CanonicalJson, b.CanonicalJson);
        Assert.NotEqual(a.Hash, c.Hash);
        Assert.Matches("^[0-9a-f]{64}$", a.Hash);
        Assert.Equal(a.Hash, ModelSpec.Parse(a.CanonicalJson).Hash);
    }

    public static TheoryData<string, string, string> Bad => new()
    {
        { """{"input":[1,28,28],"layers":[{"type":"flatten"},{"type":"dense","out":10},{"type":"relu"},{"type":"convv"}]}""", "layers[3].type", "unknown layer \"convv\"; valid: dense, conv2d" },
        { """{"input":[4],"layers":[{"type":"dense","outt":3}]}""", "layers[0].outt", "unknown field \"outt\"" },
        { """{"input":[4],"layers":[{"type":"dense","out":3,"activation":"relux"}]}""", "layers[0].activation", "unknown activation \"relux\"" },
        { """{"input":[4],"layers":[{"type":"dense","out":3,"init":"glorious"}]}""", "layers[0].init", "unknown init \"glorious\"" },
        { """{"input":[1,28,28],"layers":[{"type":"conv2d","out":4,"kernel":3},{"type":"dense","out":10}]}""", "layers[1]", "put {\"type\":\"flatten\"} before it" },
        { """{"input":[8],"layers":[{"type":"dense","in":7,"out":3}]}""", "layers[0]", "\"in\" is 7 but the previous layer gives 8" },
        { """{"input":[784],"layers":[{"type":"conv2d","out":4,"kernel":3}]}""", "layers[0]", "needs a (C,H,W) image input but gets (784)" },
        { """{"input":[1,4,4],"layers":[{"type":"conv2d","out":4,"kernel":7}]}""", "layers[0]", "kernel 7 is larger" },
        { """{"input":[1,28,28],"layers":[{"type":"conv2d","out":4,"kernel":3,"in":3}]}""", "layers[0]", "input has 1 channels" },
        { """{"input":[1,4,4],"layers":[{"type":"maxpool2d","kernel":5}]}""", "layers[0]", "kernel 5 is larger" },
        { """{"input":[4],"layers":[{"type":"dense"}]}""", "layers[0].out", "dense needs \"out\"" },
        { """{"input":[4],"layers":[{"type":"dense","out":"ten"}]}""", "layers[0].out", "must be a positive integer, not \"ten\"" },
        { """{"input":[4],"layers":[{"type":"dense","out":-3}]}""", "layers[0].out", "must be a positive integer" },
        { """{"input":[4],"layers":[{"type":"dropout","p":1.5}]}""", "layers[0].p", "a number in [0, 1)" },
        { """{"input":[1,28,28],"layers":[{"type":"lstm","hidden":8}]}""", "layers[0]", "{\"type\":\"reshape\",\"shape\":[28,28]}" },
        { """{"input":[1,28,28],"layers":[{"type":"reshape","shape":[28,27]}]}""", "layers[0]", "does not fit the input" },
        { """{"input":[4],"layers":[{"type":"dense","out":3,"name":"a"},{"type":"dense","out":3,"name":"a"}]}""", "layers[1].name", "duplicate layer name \"a\"" },
        { """{"input":[4],"layers":[{"type":"dense","out":3,"name":"a.b"}]}""", "layers[0].name", "not a valid layer name" },
        { """{"input":[4],"layers":[{"out":3}]}""", "layers[0]", "missing \"type\"" },
        { """{"input":[4],"layers":["dense"]}""", "layers[0]", "a layer is an object" },
        { """{"input":[4],"loss":"hinge","layers":[{"type":"dense","out":3}]}""", "loss", "unknown loss \"hinge\"; valid: cross_entropy, mse, bce_with_logits" },
        { """{"layers":[{"type":"dense","out":3}]}""", "input", "missing" },
        { """{"input":[0,3],"layers":[{"type":"dense","out":3}]}""", "input[0]", "positive integer" },
        { """{"input":[4],"layers":[]}""", "layers", "missing or empty" },
        { """{"input":[4],"layer":[{"type":"dense","out":3}]}""", "layer", "unknown field \"layer\"" },
        { """{"input":[4],"layers":[{"type":"dense","out":3}""", "", "not valid JSON" },
        { """[1,2]""", "", "a model spec is a JSON object" },
        { """{"input":[1,28,28],"layers":[{"type":"residual","out":8,"stride":0}]}""", "layers[0].stride", "positive integer" },
        { """{"input":[6],"layers":[{"type":"batchnorm2d"}]}""", "layers[0]", "(C,H,W) image input" },
        { """{"input":[4],"label_smoothing":1,"layers":[{"type":"dense","out":3}]}""", "label_smoothing", "a number in [0, 1)" },
        { """{"input":[4],"label_smoothing":"0.1","layers":[{"type":"dense","out":3}]}""", "label_smoothing", "a number in [0, 1)" },
        { """{"input":[4],"loss":"mse","label_smoothing":0.1,"layers":[{"type":"dense","out":3}]}""", "label_smoothing", "cross_entropy loss only" },
    };

    [Theory]
    [InlineData("""{"input":[4],"layers":[{"type":"dense","out":3,"name":"l1"},{"type":"relu"},{"name":"l2","type":"dense","out":0}]}""", "layers[2].out", "(in the dense layer \"l2\").")]
    [InlineData("""{"input":[1,8,8],"layers":[{"type":"conv","out":4,"kernel":3,"padding":-1}]}""", "layers[0].padding", "(in the conv2d layer).")]
    [InlineData("""{"input":[6],"layers":[{"type":"lstm","hidden":4,"name":"seq"}]}""", "layers[0]", "(in the lstm layer \"seq\").")]
    public void Errors_inside_a_layer_name_its_type_and_name(string json, string path, string layer)
    {
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse(json));
        Assert.Equal(path, e.Path);
        Assert.StartsWith(path + ": ", e.Message);
        Assert.EndsWith(layer, e.Message);
    }

    [Fact]
    public void Label_smoothing_reaches_the_loss_and_the_hash()
    {
        var plain = ModelSpec.Parse("""{"input":[4],"layers":[{"type":"dense","out":3}]}""");
        var smooth = ModelSpec.Parse("""{"input":[4],"label_smoothing":0.1,"layers":[{"type":"dense","out":3}]}""");
        Assert.Equal(0f, plain.LabelSmoothing);
        Assert.Equal(0.1f, smooth.LabelSmoothing);
        Assert.NotEqual(plain.Hash, smooth.Hash);   // workers of another smoothing are refused like another model
        Assert.Equal(0.1f, Assert.IsType<DistTrain.Nn.Losses.SoftmaxCrossEntropy>(smooth.CreateLoss()).LabelSmoothing);
        Assert.Equal(0f, Assert.IsType<DistTrain.Nn.Losses.SoftmaxCrossEntropy>(plain.CreateLoss()).LabelSmoothing);
    }

    [Theory, MemberData(nameof(Bad))]
    public void Bad_spec_names_the_field(string json, string path, string fragment)
    {
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse(json));
        Assert.Equal(path, e.Path);
        Assert.Contains(fragment, e.Message);
        if (path.Length > 0) Assert.StartsWith(path + ": ", e.Message);
    }

    [Fact]
    public void Load_names_the_file()
    {
        var file = Path.Combine(Path.GetTempPath(), $"spec-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{"input":[4],"layers":[{"type":"dense","out":3,"activation":"swish"}]}""");
        try
        {
            var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Load(file));
            Assert.Equal("layers[0].activation", e.Path);
            Assert.Contains(file, e.Message);
        }
        finally { File.Delete(file); }
        Assert.Contains("does not exist", Assert.Throws<ModelSpecException>(() => ModelSpec.Load(file)).Message);
    }

    [Fact]
    public void Aliases_and_recurrent_layers_parse()
    {
        var s = ModelSpec.Parse("""
            {"input":[1,28,28],"layers":[{"type":"reshape","shape":[28,28]},{"type":"gru","hidden":16,"return_sequences":true},
              {"type":"layernorm"},{"type":"lstm","hidden":8},{"type":"Linear","out":3}]}
            """);
        Assert.Equal([28, 16], s.Layers[1].OutputShape);
        Assert.Equal([8], s.Layers[3].OutputShape);
        Assert.Equal("dense", s.Layers[4].Type);
        var m = s.Build();
        Assert.Equal([3], m.OutputShape);
    }
}
