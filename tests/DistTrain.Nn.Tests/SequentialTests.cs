// Sequential: PyTorch state_dict naming, parameter counts, shape-chain errors, summary, and the
// Forward/Backward/ZeroGrad/TrainStepGradient contract checked against independent computations.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class SequentialTests
{
    [Fact]
    public void MlpHasTorchNamesShapesAndParameterCount()
    {
        var m = TestModels.Mlp();
        Assert.Equal(235_146, m.ParameterCount);
        Assert.Equal(["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"], m.Parameters().Select(p => p.Name));
        Assert.Equal([256, 784], m.Parameters().First().Shape);
        Assert.Equal([10], m.OutputShape);
        // Contiguous, in model order (contract 1).
        int offset = 0;
        foreach (var p in m.Parameters()) { Assert.Equal(offset, p.Offset); offset += p.Length; }
        Assert.Equal(m.Store.Values.Length, offset);
    }

    [Fact]
    public void ChildrenAreNamedUnderTheirParentAndIndexedPreOrder()
    {
        var m = new Sequential([2, 6, 6], [new Conv2d(2, 3, 3, padding: 1), ResidualBlock.Basic(3, 5, stride: 2), new Flatten()]);
        Assert.Equal(["0.weight", "0.bias", "1.conv1.weight", "1.conv1.bias", "1.conv2.weight", "1.conv2.bias",
                      "1.downsample.0.weight", "1.downsample.0.bias"], m.Parameters().Select(p => p.Name));
        Assert.Equal(["0", "1", "1.conv1", "1.relu", "1.conv2", "1.downsample.0", "2"], m.AllLayers.Select(l => l.Name));
        Assert.Equal(Enumerable.Range(0, 7), m.AllLayers.Select(l => l.Index));
        Assert.Equal([5 * 3 * 3], m.OutputShape);
    }

    [Fact]
    public void BasicBlockWithBatchNormHasTorchvisionStateDictNames()
    {
        var m = new Sequential([4, 8, 8], [ResidualBlock.Basic(4, 8, stride: 2, norm: c => new BatchNorm2d(c))]);
        string[] bn(string p) => [$"0.{p}.weight", $"0.{p}.bias", $"0.{p}.running_mean", $"0.{p}.running_var", $"0.{p}.num_batches_tracked"];
        Assert.Equal(["0.conv1.weight", .. bn("bn1"), "0.conv2.weight", .. bn("bn2"), "0.downsample.0.weight", .. bn("downsample.1")],
            m.Store.All.Select(p => p.Name));
        // torchvision BasicBlock(4, 8, stride=2, downsample=conv1x1+BN): 288 + 16 + 576 + 16 + 32 + 16 learned values.
        Assert.Equal(944, m.ParameterCount);
    }

    [Fact]
    public void NamedLayersUseTheGivenNames()
    {
        var m = new Sequential([4], [("fc1", (Layer)new Dense(4, 3)), ("act", new Tanh()), ("fc2", new Dense(3, 2))]);
        Assert.Equal(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], m.Parameters().Select(p => p.Name));
    }

    [Fact]
    public void ShapeChainErrorNamesTheLayerAndTheShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => new Sequential([1, 28, 28], [new Flatten(), new Dense(784, 64), new Dense(100, 10)]));
        Assert.Contains("Layer 2 Dense(in=100, out=10)", e.Message);
        Assert.Contains("(64)", e.Message);
        var c = Assert.Throws<ArgumentException>(() => new Sequential([3, 8, 8], [new Conv2d(1, 4, 3)]));
        Assert.Contains("Layer 0 Conv2d(1, 4", c.Message);
        Assert.Contains("(3,8,8)", c.Message);
        var r = Assert.Throws<ArgumentException>(() => new Sequential([2, 8, 8],
            [new ResidualBlock([("conv1", new Conv2d(2, 4, 3, padding: 1))])]));
        Assert.Contains("shortcut", r.Message);
    }

    [Fact]
    public void RejectsAReusedLayerInstanceAndAWrongInput()
    {
        var relu = new ReLU();
        Assert.Throws<ArgumentException>(() => new Sequential([4], [new Dense(4, 4), relu, new Dense(4, 4), relu]));
        var m = TestModels.Mlp();
        var e = Assert.Throws<ArgumentException>(() => m.Forward(new Tensor(2, 784), StepContext.Eval));
        Assert.Contains("(B, 1,28,28)", e.Message);
    }

    [Fact]
    public void SummaryListsLayersOutputShapesAndTheTotal()
    {
        var s = TestModels.Mlp().Summary();
        Assert.Contains("Dense(in=784, out=256)", s);
        Assert.Contains("200,960", s);
        Assert.Contains("(128)", s);
        Assert.Contains("Total parameters: 235,146", s);
    }

    [Fact]
    public void DefaultInitIsTorchsUniformBound()
    {
        var m = TestModels.Mlp(seed: 5);
        foreach (var p in m.Parameters())
        {
            int fanIn = p.Name.StartsWith('1') ? 784 : p.Name.StartsWith('3') ? 256 : 128;
            float bound = 1f / MathF.Sqrt(fanIn), max = p.Value.Span.ToArray().Max(MathF.Abs);
            // Every draw within the bound; with ≥ 128 draws the largest is near it (P(miss) < 0.9^128).
            Assert.True(max <= bound && (p.Length < 128 || max > 0.9f * bound), $"{p.Name}: max |w| {max} vs bound {bound}");
        }
        Assert.Equal(TestModels.Mlp(seed: 5).Store.Values, m.Store.Values);
        Assert.NotEqual(TestModels.Mlp(seed: 6).Store.Values, m.Store.Values);
    }

    [Fact]
    public void ForwardMatchesAHandComputedMlp()
    {
        var m = new Sequential([2], [new Dense(2, 2), new ReLU(), new Dense(2, 1)]);
        m.Store.Values.AsSpan().Clear();
        var v = m.Store.Values;
        // 0.weight ((1,2),(−1,3)), 0.bias (0.5,−1), 2.weight (2,−1), 2.bias 0.25
        new float[] { 1, 2, -1, 3, 0.5f, -1, 2, -1, 0.25f }.CopyTo(v, 0);
        var x = new Tensor(2, 2); x.CopyFrom([1f, 1f, 2f, -1f]);
        var y = m.Forward(x, StepContext.Eval);
        // sample 0: h = relu(3.5, 1) → 2·3.5 − 1 + 0.25 = 6.25; sample 1: h = relu(0.5, −6) → 1 + 0.25
        Assert.Equal([6.25f, 1.25f], y.ToArray());
    }

    [Fact]
    public void BackwardAccumulatesAndTrainStepGradientStartsFromZero()
    {
        var m = TestModels.Mlp(seed: 1);
        var rng = new Random(2);
        var x = GradCheck.Fill(new Tensor(3, 1, 28, 28), rng, null);
        int[] labels = [1, 7, 3];
        var loss = new SoftmaxCrossEntropy();
        double sum = m.TrainStepGradient(x, labels, null, loss, 1f / 3, new StepContext(true));
        var once = (float[])m.Store.Grads.Clone();
        Assert.True(sum > 0);
        Assert.Contains(once, g => g != 0);

        // Again on top of the existing gradient: Backward alone accumulates (2× up to rounding: the GEMM
        // continues each FMA chain from the old value).
        var dOut = new Tensor(3, 10);
        loss.Compute(m.Forward(x, new StepContext(true)), labels, null, dOut, 1f / 3);
        m.Backward(dOut);
        for (int i = 0; i < once.Length; i++)
            Assert.True(Math.Abs(2 * once[i] - m.Store.Grads[i]) <= 1e-6f + 1e-5f * Math.Abs(once[i]), $"grad[{i}]");

        // TrainStepGradient zeroes first, so it reproduces the single gradient bit for bit.
        double sum2 = m.TrainStepGradient(x, labels, null, loss, 1f / 3, new StepContext(true));
        Assert.Equal(sum, sum2);
        Assert.Equal(once, m.Store.Grads);
    }

    [Fact]
    public void TrainStepGradientMatchesFiniteDifferencesOfTheScaledLoss()
    {
        // The whole composition (forward, fused loss, backward through every layer) against
        // d(scale · Σ loss)/dθ by central differences, for a small smooth model.
        var m = new Sequential([2, 4, 4], [new Conv2d(2, 3, 3, padding: 1), new Tanh(), new AvgPool2d(2), new Flatten(),
            new Dense(12, 6), new GELU(), new Dense(6, 4)], seed: 9);
        var x = GradCheck.Fill(new Tensor(3, 2, 4, 4), new Random(10), null);
        int[] labels = [3, 0, 2];
        var loss = new SoftmaxCrossEntropy();
        const float scale = 1f / 3;
        var ctx = new StepContext(true);
        m.TrainStepGradient(x, labels, null, loss, scale, ctx);
        var g = (float[])m.Store.Grads.Clone();
        var v = m.Store.Values;
        var dOut = new Tensor(3, 4);
        double L() => scale * loss.Compute(m.Forward(x, ctx), labels, null, dOut, scale);
        for (int i = 0; i < v.Length; i += 7)
        {
            float keep = v[i], h = 1e-2f;
            v[i] = keep + h; double lp = L();
            v[i] = keep - h; double lm = L();
            v[i] = keep;
            double num = (lp - lm) / ((double)(keep + h) - (keep - h));
            Assert.True(Math.Abs(num - g[i]) <= 1e-3 + 2e-2 * Math.Abs(num), $"param {i}: analytic {g[i]}, numeric {num}");
        }
    }

    [Fact]
    public void InputGradientIsSkippedUntilALayerWithParametersAndAvailableOnRequest()
    {
        var m = TestModels.Mlp(seed: 2);
        Assert.Equal([false, false, true, true, true, true], m.Layers.Select(l => l.ComputeInputGrad));
        var x = GradCheck.Fill(new Tensor(2, 1, 28, 28), new Random(1), null);
        var ctx = new StepContext(true);
        m.TrainStepGradient(x, [1, 2], null, new SoftmaxCrossEntropy(), 0.5f, ctx);
        var skipped = (float[])m.Store.Grads.Clone();
        // With input gradients on, the parameter gradients are the same bits and dx is ∂/∂x.
        m.InputGrad = true;
        Assert.All(m.Layers, l => Assert.True(l.ComputeInputGrad));
        m.TrainStepGradient(x, [1, 2], null, new SoftmaxCrossEntropy(), 0.5f, ctx);
        Assert.Equal(skipped, m.Store.Grads);
        GradCheck.Model(m, 2, new GradCheck.Options { MaxChecks = 30, MaxKinkFraction = 0.35 });
    }

    [Fact]
    public void MicroBatchGradientsSumToTheFullBatchGradient()
    {
        // scale = 1/globalBatch per micro-batch: Σ of micro-batch gradients ≈ the full-batch mean gradient.
        var m = TestModels.Mlp(seed: 3);
        var x = GradCheck.Fill(new Tensor(4, 1, 28, 28), new Random(4), null);
        int[] labels = [0, 9, 4, 4];
        var loss = new SoftmaxCrossEntropy();
        m.TrainStepGradient(x, labels, null, loss, 0.25f, new StepContext(true));
        var full = (float[])m.Store.Grads.Clone();
        var sum = new float[full.Length];
        for (int mb = 0; mb < 2; mb++)
        {
            var xm = new Tensor(x.Buffer, mb * 2 * 784, 2, 1, 28, 28);
            m.TrainStepGradient(xm, labels.AsSpan(mb * 2, 2), null, loss, 0.25f, new StepContext(true));
            for (int i = 0; i < sum.Length; i++) sum[i] += m.Store.Grads[i];
        }
        for (int i = 0; i < sum.Length; i++) Assert.True(Math.Abs(sum[i] - full[i]) <= 1e-5f + 1e-4f * Math.Abs(full[i]), $"grad[{i}] {sum[i]} vs {full[i]}");
    }

    [Fact]
    public void InitSpecsFollowTheirDistributions()
    {
        var rng = new Random(1);
        Assert.Throws<ArgumentException>(() => new Dense(3, 3, init: "bogus"));
        var m = new Sequential([400], [new Dense(400, 300, init: "xavier"), new Dense(300, 200, init: "normal:0.01"),
            new Dense(200, 100, init: "he"), new Dense(100, 10, init: "zeros")]);
        var p = m.Parameters().ToDictionary(q => q.Name, q => q.Value.ToArray());
        Assert.True(p["0.weight"].Max(MathF.Abs) <= MathF.Sqrt(6f / 700));
        Assert.Equal(0.01, Std(p["1.weight"]), 3);
        Assert.Equal(Math.Sqrt(2.0 / 200), Std(p["2.weight"]), 2);
        Assert.All(p["3.weight"], v => Assert.Equal(0f, v));
        Assert.All(p["0.bias"], v => Assert.Equal(0f, v));
    }

    private static double Std(float[] v)
    {
        double mean = v.Average(x => (double)x);
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / v.Length);
    }

    [Fact]
    public void GradientReadyReportsSuffixesThatAreAlreadyFinal()
    {
        // Residual blocks (children), a parameter-free tail (pool, flatten) and dense layers: after each top-level layer's
        // backward, everything from the reported offset on must already equal the finished gradient.
        var m = new Sequential([1, 8, 8], [new Conv2d(1, 4, 3, padding: 1), new ReLU(), ResidualBlock.Basic(4, 6, stride: 2, norm: c => new BatchNorm2d(c)),
            new MaxPool2d(2), new Flatten(), new Dense(24, 7), new ReLU(), new Dense(7, 3)]);
        var rng = new Random(3);
        var x = GradCheck.Fill(new Tensor(2, 1, 8, 8), rng, null);
        var loss = new SoftmaxCrossEntropy();
        var reported = new List<(int From, float[] Grads)>();
        m.GradientReady = from => reported.Add((from, (float[])m.Store.Grads.Clone()));
        m.TrainStepGradient(x, [0, 2], null, loss, 0.5f, new StepContext(true));
        m.GradientReady = null;
        var final = m.Store.Grads;
        Assert.Equal(8, reported.Count); // one call per top-level layer, last to first
        Assert.Equal(0, reported[^1].From);
        for (int i = 1; i < reported.Count; i++) Assert.True(reported[i].From <= reported[i - 1].From);
        // Offsets are exactly the starts of the layers' runs: Dense 7→3, Dense 24→7, the block, the first conv.
        int dense2 = m.Parameters().First(p => p.Name == "7.weight").Offset, dense1 = m.Parameters().First(p => p.Name == "5.weight").Offset;
        int block = m.Parameters().First(p => p.Name == "2.conv1.weight").Offset;
        Assert.Equal([dense2, dense2, dense1, dense1, dense1, block, block, 0], reported.Select(r => r.From));
        foreach (var (from, grads) in reported)
        {
            Assert.Equal(final.AsSpan(from).ToArray(), grads.AsSpan(from).ToArray());
            // and the part before it is not final yet (still zero or partial) wherever a layer before has parameters
            if (from > 0) Assert.NotEqual(final.AsSpan(0, from).ToArray(), grads.AsSpan(0, from).ToArray());
        }
    }

    [Fact]
    public void ParametersNeededAnnouncesEveryValueBeforeTheForwardReadsIt()
    {
        // Values the forward has not asked for yet are NaN; each announcement restores [previous, to). If any layer read a
        // value before its announcement, the output would differ from the plain forward (NaN spreads).
        var m = new Sequential([1, 8, 8], [new Conv2d(1, 4, 3, padding: 1), new ReLU(), ResidualBlock.Basic(4, 6, stride: 2, norm: c => new BatchNorm2d(c)),
            new MaxPool2d(2), new Flatten(), new Dense(24, 7), new ReLU(), new Dense(7, 3)]);
        var x = GradCheck.Fill(new Tensor(2, 1, 8, 8), new Random(5), null);
        var expected = m.Forward(x, StepContext.Eval).Span.ToArray();
        var truth = m.Store.Values.ToArray();
        var announced = new List<int>();
        int restored = 0;
        m.Store.Values.AsSpan().Fill(float.NaN);
        m.ParametersNeeded = to =>
        {
            announced.Add(to);
            if (to > restored) { truth.AsSpan(restored, to - restored).CopyTo(m.Store.Values.AsSpan(restored)); restored = to; }
        };
        var y = m.Forward(x, StepContext.Eval).Span.ToArray();
        m.ParametersNeeded = null;
        Assert.Equal(expected, y);
        Assert.Equal(m.ParameterCount, restored);
        Assert.Equal(8, announced.Count);
        for (int i = 1; i < announced.Count; i++) Assert.True(announced[i] >= announced[i - 1]);
        for (int i = 0; i < 8; i++) Assert.Equal(m.ParameterRunEnd(i), announced[i]);
        // Runs tile the buffer in layer order; parameter-free layers have empty runs.
        Assert.Equal(0, m.ParameterRunStart(0));
        for (int i = 1; i < 8; i++) Assert.Equal(m.ParameterRunEnd(i - 1), m.ParameterRunStart(i));
        Assert.Equal(m.ParameterRunStart(1), m.ParameterRunEnd(1)); // ReLU
    }
}
