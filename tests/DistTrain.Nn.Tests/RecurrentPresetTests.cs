// The rnn, lstm, gru and resnet presets built from their specs with this branch's layers: PyTorch
// state_dict names and shapes (lstm exactly as the TorchSharp peer's LstmNet), training steps on one
// batch that lower the loss, and a steady-state forward+backward that allocates nothing.
using DistTrain.Nn.Models;
using DistTrain.Nn.Tests.Support;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]  // measures allocations
public class RecurrentPresetTests
{
    [Fact]
    public void Lstm_preset_has_the_peer_names_and_shapes()
    {
        var model = Presets.Spec("lstm").Build(seed: 3);
        var names = model.Store.All.Select(p => $"{p.Name} {Tensor.ShapeString(p.Shape)}");
        Assert.Equal(["lstm.weight_ih_l0 (512,28)", "lstm.weight_hh_l0 (512,128)", "lstm.bias_ih_l0 (512)", "lstm.bias_hh_l0 (512)",
                      "fc.weight (10,128)", "fc.bias (10)"], names);
        Assert.Equal(4 * 128 * (28 + 128 + 2) + 1290, model.ParameterCount);
    }

    [Theory]
    [InlineData("rnn")]
    [InlineData("lstm")]
    [InlineData("gru")]
    public void A_few_steps_on_one_batch_lower_the_loss_without_allocating(string preset)
    {
        var spec = Presets.Spec(preset);
        var model = spec.Build(seed: 5);
        var loss = spec.CreateLoss();
        var rng = new Random(9);
        const int b = 6;
        var x = GradCheckRnn.RandomTensor(rng, 1f, [b, .. model.InputShape]);
        int[] labels = [0, 1, 2, 3, 4, 5];
        var ctx = new StepContext(true);
        const float lr = 1f;  // plain SGD on a mean loss: these nets need a large step to move in 10 steps
        double Step()
        {
            model.ZeroGrad();
            double l = model.TrainStepGradient(x, labels, null, loss, 1f / b, ctx);
            var v = model.Store.Values; var g = model.Store.Grads;
            for (int i = 0; i < v.Length; i++) v[i] -= lr * g[i];
            return l;
        }
        double first = Step();
        var dOut = GradCheckRnn.RandomTensor(rng, 1f, b, 10);
        Assert.Equal(0, GradCheckRnn.AllocatedBytes(() => { model.Forward(x, ctx); model.Backward(dOut); }));
        double last = 0;
        for (int i = 0; i < 10; i++) last = Step();
        Assert.True(last < 0.7 * first, $"{preset}: loss {first} -> {last}");
    }

    [Fact]
    public void Resnet_preset_batch_norms_have_pytorch_buffers_and_switch_to_running_stats_in_eval()
    {
        var model = Presets.Spec("resnet").Build(seed: 2);
        var buffers = model.Store.All.Where(p => p.IsBuffer).Select(p => p.Name).ToList();
        Assert.Contains("stem_bn.running_mean", buffers);
        Assert.Contains("stem_bn.running_var", buffers);
        Assert.Contains("stem_bn.num_batches_tracked", buffers);
        Assert.Equal(0, buffers.Count % 3);
        var x = GradCheckRnn.RandomTensor(new Random(4), 1f, [2, .. model.InputShape]);
        var yEval0 = model.Forward(x, StepContext.Eval).ToArray();
        var yTrain = model.Forward(x, new StepContext(true)).ToArray();
        var yEval1 = model.Forward(x, StepContext.Eval).ToArray();
        Assert.NotEqual(yEval0, yTrain);   // batch statistics differ from the initial running ones
        Assert.NotEqual(yEval0, yEval1);   // one training forward moved the running statistics
        Assert.All(model.Store.All.Where(p => p.LocalName == "num_batches_tracked"), p => Assert.Equal(1f, p.Value[0]));
    }
}
