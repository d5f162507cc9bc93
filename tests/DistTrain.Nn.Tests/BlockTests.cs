// The model graph (a `block` of named nodes with inputs, add and concat): finite differences through fan-out, add
// and concat; a block written as torchvision's basic block computes what ResidualBlock computes; specs with a missing
// node, a cycle or a dead branch are refused by the node's name; the inception preset's shapes and parameter count.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using Xunit;

namespace DistTrain.Nn.Tests;

public class BlockTests
{
    private static Sequential Parse(string json, int seed = 1) => ModelSpec.Parse(json).Build((ulong)seed);

    [Fact]
    public void Branches_add_and_concat_back_propagate_like_finite_differences()
    {
        // input feeds a, b and the add; a and b feed the concat; the add reads b's tanh again (fan-out of a node).
        const string json = """
            {"input":[5],"loss":"mse","layers":[{"type":"block","name":"g","nodes":[
              {"name":"a","type":"dense","out":5,"activation":"tanh","inputs":["input"]},
              {"name":"b","type":"dense","out":5,"inputs":["input"]},
              {"name":"bt","type":"tanh"},
              {"name":"sum","type":"add","inputs":["input","bt","a"]},
              {"name":"c","type":"dense","out":3,"inputs":["sum"]},
              {"name":"cat","type":"concat","inputs":["a","c","bt"]}]},
              {"type":"dense","out":4,"name":"head"}]}
            """;
        Assert.Equal([13], ModelSpec.Parse(json).Layers[0].OutputShape);
        var model = Parse(json, seed: 2);
        Assert.Equal([4], model.OutputShape);
        model.InputGrad = true;
        GradCheck.Model(model, 3, new GradCheck.Options(MaxChecks: 200));
    }

    [Fact]
    public void Concat_of_images_joins_channels_and_gradients_reach_every_branch()
    {
        const string json = """
            {"input":[2,5,5],"layers":[{"type":"block","name":"inc","nodes":[
              {"name":"b1","type":"conv2d","out":3,"kernel":1,"inputs":["input"]},
              {"name":"b2","type":"conv2d","out":2,"kernel":3,"padding":1,"activation":"tanh","inputs":["input"]},
              {"name":"pad","type":"zero_pad2d","padding":1,"inputs":["input"]},
              {"name":"pool","type":"maxpool2d","kernel":3,"stride":1},
              {"name":"cat","type":"concat","inputs":["b1","b2","pool"]}]},
              {"type":"flatten"},{"type":"dense","out":3,"name":"fc"}]}
            """;
        Assert.Equal([7, 5, 5], ModelSpec.Parse(json).Layers[0].OutputShape);
        var model = Parse(json, seed: 3);
        model.InputGrad = true;
        Assert.Contains("inc.b2.weight", model.Parameters().Select(p => p.Name));
        GradCheck.Model(model, 2, new GradCheck.Options(MaxChecks: 150));
    }

    [Fact]
    public void A_block_written_as_a_basic_block_computes_what_ResidualBlock_computes()
    {
        var viaBlock = Parse("""
            {"input":[3,6,6],"layers":[{"type":"block","name":"blk","nodes":[
              {"name":"conv1","type":"conv2d","out":3,"kernel":3,"padding":1,"bias":false,"inputs":["input"]},
              {"name":"bn1","type":"batchnorm2d"},
              {"name":"relu1","type":"relu"},
              {"name":"conv2","type":"conv2d","out":3,"kernel":3,"padding":1,"bias":false},
              {"name":"bn2","type":"batchnorm2d"},
              {"name":"sum","type":"add","inputs":["bn2","input"]},
              {"name":"relu","type":"relu"}]}]}
            """);
        var residual = new Sequential([3, 6, 6], [("blk", (Layer)ResidualBlock.Basic(3, 3, 1, c => new BatchNorm2d(c)))], seed: 9);
        // Same parameters by name: conv1, bn1, conv2, bn2 (torchvision's names in both).
        foreach (var p in residual.Store.All)
        {
            var q = viaBlock.Store.All.Single(x => x.Name == p.Name);
            p.Value.Span.CopyTo(q.Value.Span);
        }
        Assert.Equal(residual.ParameterCount, viaBlock.ParameterCount);
        var x = GradCheck.Fill(new Tensor(2, 3, 6, 6), new Random(4), null);
        var ctx = new StepContext(true, Seed: 1, Step: 0);
        var a = residual.Forward(x, ctx).ToArray();
        var b = viaBlock.Forward(x, ctx).ToArray();
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5f, $"output {i}: {a[i]} vs {b[i]}");
        var dy = GradCheck.Fill(new Tensor(2, 3, 6, 6), new Random(5), null);
        residual.ZeroGrad(); viaBlock.ZeroGrad();
        residual.Backward(dy); viaBlock.Backward(dy);
        foreach (var p in residual.Parameters())
        {
            var q = viaBlock.Parameters().Single(x => x.Name == p.Name);
            for (int i = 0; i < p.Length; i++)
                Assert.True(Math.Abs(p.Grad[i] - q.Grad[i]) <= 1e-4f + 1e-4f * Math.Abs(p.Grad[i]), $"{p.Name}[{i}]: {p.Grad[i]} vs {q.Grad[i]}");
        }
    }

    [Theory]
    [InlineData("""[{"name":"a","type":"dense","out":3},{"name":"s","type":"add","inputs":["a","b9"]}]""", "layers[0].nodes[1].inputs[1]", "\"b9\" names no node")]
    [InlineData("""[{"name":"a","type":"dense","out":4,"inputs":["c"]},{"name":"b","type":"dense","out":4},{"name":"c","type":"add","inputs":["b","input"]}]""", "layers[0].nodes", "cycle through nodes \"a\", \"b\", \"c\"")]
    [InlineData("""[{"name":"a","type":"dense","out":4,"inputs":["input"]},{"name":"dead","type":"dense","out":2,"inputs":["input"]},{"name":"b","type":"tanh","inputs":["a"]}]""", "layers[0].nodes[1]", "\"dead\"'s output reaches nothing")]
    [InlineData("""[{"name":"a","type":"dense","out":3},{"name":"s","type":"add","inputs":["a"]}]""", "layers[0].nodes[1].inputs", "joins at least two inputs")]
    [InlineData("""[{"name":"a","type":"dense","out":3},{"name":"s","type":"add","inputs":["a","input"]}]""", "layers[0].nodes[1]", "add node \"s\" joins shapes (3) and (4)")]
    [InlineData("""[{"name":"a","type":"dense","out":3},{"type":"tanh"}]""", "layers[0].nodes[1].name", "needs a \"name\"")]
    [InlineData("""[{"name":"a","type":"dense","out":3,"inputs":["input","input"]}]""", "layers[0].nodes[0].inputs", "reads one input")]
    public void Bad_wiring_is_refused_by_the_nodes_name(string nodes, string path, string message)
    {
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse($$"""{"input":[4],"layers":[{"type":"block","name":"g","nodes":{{nodes}}}]}"""));
        Assert.Equal(path, e.Path);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Inception_preset_has_googlenet_branches_and_the_hand_counted_parameters()
    {
        var model = Presets.Spec("inception").Build(seed: 1);
        int Conv(int c, int o, int k) => o * c * k * k + o;
        int inc1 = Conv(32, 16, 1) + Conv(32, 16, 1) + Conv(16, 24, 3) + Conv(32, 4, 1) + Conv(4, 8, 5) + Conv(32, 8, 1);
        int inc2 = Conv(56, 32, 1) + Conv(56, 24, 1) + Conv(24, 48, 3) + Conv(56, 8, 1) + Conv(8, 16, 5) + Conv(56, 16, 1);
        Assert.Equal(32 * 9 + 2 * 32 + inc1 + 2 * 56 + inc2 + 2 * 112 + 112 * 10 + 10, model.ParameterCount);   // stem conv without bias, 3 BNs
        Assert.Equal([10], model.OutputShape);
        var names = model.Parameters().Select(p => $"{p.Name} {Tensor.ShapeString(p.Shape)}").ToList();
        Assert.Contains("inc1.b2.weight (24,16,3,3)", names);
        Assert.Contains("inc2.b3.weight (16,8,5,5)", names);
        Assert.Contains("fc.weight (10,112)", names);
        Assert.Contains("Block(15 nodes", model.Summary());
    }

    private static (double Loss, float[] Grads) InceptionGradient(int threads)
    {
        int saved = Compute.Threads;
        Compute.Threads = threads;
        try
        {
            var m = Presets.Spec("inception").Build(seed: 4);
            var x = GradCheck.Fill(new Tensor(3, 1, 28, 28), new Random(8), r => r.NextSingle());
            double loss = m.TrainStepGradient(x, [0, 4, 9], null, new SoftmaxCrossEntropy(), 1f / 3, new StepContext(true, Seed: 3, Step: 2, MicroBatch: 1));
            return (loss, (float[])m.Store.Grads.Clone());
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void Inception_gradient_is_bit_identical_twice_and_on_two_threads()
    {
        var a = InceptionGradient(1);
        var b = InceptionGradient(1);
        var c = InceptionGradient(2);
        Assert.Contains(a.Grads, g => g != 0);
        Assert.Equal(a.Grads, b.Grads);
        Assert.Equal(a.Loss, c.Loss);
        Assert.Equal(a.Grads, c.Grads);
    }
}
