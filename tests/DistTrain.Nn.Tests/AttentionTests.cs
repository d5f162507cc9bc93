// Multi-head self-attention against a naive double-precision reference written from the formula
// (PyTorch MultiheadAttention's layout: in_proj rows [W_q; W_k; W_v], out_proj), finite-difference
// checks of attention, the encoder block and the ViT plumbing layers, and the vit preset: its
// parameter names and count (93,962, as benchmarks/vit-vs-libtorch's libtorch model), no allocation per step, same bits on 1 and 2 threads.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]  // measures allocations and sets Compute.Threads
public class AttentionTests
{
    private static readonly GradCheck.Options Smooth = new() { MaxChecks = 40, H = 4e-3f, Atol = 2e-3, Rtol = 2e-2 };

    /// <summary>y = out_proj(concat_h softmax((x W_qhᵀ + b_qh)(x W_khᵀ + b_kh)ᵀ/√D)(x W_vhᵀ + b_vh)), all in double.</summary>
    internal static double[] NaiveAttention(float[] x, int b, int t, int e, int heads, float[] wIn, float[] bIn, float[] wOut, float[] bOut)
    {
        int d = e / heads;
        var y = new double[b * t * e];
        for (int s = 0; s < b; s++)
        {
            var qkv = new double[t, 3 * e];
            for (int i = 0; i < t; i++)
                for (int o = 0; o < 3 * e; o++)
                {
                    double acc = bIn[o];
                    for (int k = 0; k < e; k++) acc += (double)x[(s * t + i) * e + k] * wIn[o * e + k];
                    qkv[i, o] = acc;
                }
            var concat = new double[t, e];
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < t; i++)
                {
                    var score = new double[t];
                    double max = double.NegativeInfinity, sum = 0;
                    for (int j = 0; j < t; j++)
                    {
                        double acc = 0;
                        for (int k = 0; k < d; k++) acc += qkv[i, h * d + k] * qkv[j, e + h * d + k];
                        score[j] = acc / Math.Sqrt(d);
                        max = Math.Max(max, score[j]);
                    }
                    for (int j = 0; j < t; j++) sum += score[j] = Math.Exp(score[j] - max);
                    for (int k = 0; k < d; k++)
                    {
                        double acc = 0;
                        for (int j = 0; j < t; j++) acc += score[j] / sum * qkv[j, 2 * e + h * d + k];
                        concat[i, h * d + k] = acc;
                    }
                }
            for (int i = 0; i < t; i++)
                for (int o = 0; o < e; o++)
                {
                    double acc = bOut[o];
                    for (int k = 0; k < e; k++) acc += concat[i, k] * wOut[o * e + k];
                    y[(s * t + i) * e + o] = acc;
                }
        }
        return y;
    }

    [Theory]
    [InlineData(2, 5, 8, 2)]
    [InlineData(1, 17, 64, 4)]
    [InlineData(3, 1, 6, 3)]
    [InlineData(2, 9, 12, 1)]
    public void Attention_matches_the_naive_double_reference(int b, int t, int e, int heads)
    {
        var attn = new MultiheadAttention(e, heads);
        var model = new Sequential([t, e], [("attn", (Layer)attn)], seed: 3);
        var rng = new Random(t * 31 + e);
        // Larger weights than the init give peaked softmaxes too, where errors would show.
        foreach (ref var v in model.Store.Values.AsSpan()) v += (float)(rng.NextDouble() * 2 - 1) * 0.3f;
        var x = GradCheck.Fill(new Tensor(b, t, e), rng, r => (float)(r.NextDouble() * 4 - 2));
        var y = model.Forward(x, StepContext.Eval).ToArray();
        var expected = NaiveAttention(x.ToArray(), b, t, e, heads, attn.InProjWeight.Value.ToArray(), attn.InProjBias.Value.ToArray(),
            attn.OutProjWeight.Value.ToArray(), attn.OutProjBias.Value.ToArray());
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-5 + 1e-5 * Math.Abs(expected[i]), $"y[{i}] = {y[i]}, reference {expected[i]}");
        // Each probability row sums to one.
        var p = attn.Probabilities!.ToArray();
        for (int r = 0; r < p.Length / t; r++) Assert.Equal(1.0, p.AsSpan(r * t, t).ToArray().Sum(v => (double)v), 5);
    }

    [Fact]
    public void Attention_has_pytorch_parameter_names_and_init()
    {
        var model = new Sequential([5, 8], [("attn", (Layer)new MultiheadAttention(8, 2))], seed: 1);
        Assert.Equal(["attn.in_proj_weight (24,8)", "attn.in_proj_bias (24)", "attn.out_proj.weight (8,8)", "attn.out_proj.bias (8)"],
            model.Store.All.Select(p => $"{p.Name} {Tensor.ShapeString(p.Shape)}"));
        var w = model.Store.All[0].Value.ToArray();
        double bound = Math.Sqrt(6.0 / (8 + 24));   // xavier_uniform_ on (3E, E)
        Assert.All(w, v => Assert.InRange(v, -bound, bound));
        Assert.True(w.Max() > 0.8 * bound && w.Min() < -0.8 * bound);
        Assert.All(model.Store.All[1].Value.ToArray(), v => Assert.Equal(0f, v));
        Assert.All(model.Store.All[3].Value.ToArray(), v => Assert.Equal(0f, v));
    }

    [Theory]
    [InlineData(1, 4, 8, 2)]
    [InlineData(3, 5, 6, 3)]
    [InlineData(2, 3, 4, 1)]
    public void Attention_gradients_match_finite_differences(int b, int t, int e, int heads) =>
        CheckPerturbed([t, e], b, ("attn", new MultiheadAttention(e, heads)));

    [Theory]
    [InlineData(1, 4, 8, 2, 12)]
    [InlineData(2, 3, 6, 3, 5)]
    public void Encoder_block_gradients_match_finite_differences(int b, int t, int e, int heads, int mlp) =>
        CheckPerturbed([t, e], b, ("block", new TransformerEncoderLayer(e, heads, mlp)));

    [Fact]
    public void Vit_plumbing_gradients_match_finite_differences()
    {
        CheckPerturbed([2, 4, 6], 2, ("patch", new Patches(2)), ("embed", new Dense(8, 4)), ("cls", new ClassToken()),
            ("pos", new PositionalEmbedding()), ("pool", new TokenPool("cls")));
        foreach (var mode in new[] { "mean", "last" })
            CheckPerturbed([3, 5], 3, ("pos", new PositionalEmbedding()), ("pool", new TokenPool(mode)));
    }

    private static void CheckPerturbed(int[] input, int batch, params (string, Layer)[] layers)
    {
        var model = new Sequential(input, layers, seed: 2) { InputGrad = true };
        var rng = new Random(5);
        // Away from the init (LayerNorm 1/0, class token 0) so every term of the gradient is exercised.
        foreach (ref var v in model.Store.Values.AsSpan()) v += (float)(rng.NextDouble() * 2 - 1) * 0.2f;
        GradCheck.Model(model, batch, Smooth);
    }

    [Fact]
    public void Patches_are_row_major_tiles_in_channel_row_column_order()
    {
        var layer = new Patches(2);
        var model = new Sequential([2, 4, 6], [layer]);
        var x = new Tensor(1, 2, 4, 6);
        for (int i = 0; i < x.Length; i++) x[i] = i;
        var y = model.Forward(x, StepContext.Eval);
        Assert.Equal([1, 6, 8], y.Shape);
        // Token 4 is grid row 1, column 1: rows 2..3, columns 2..3 of each channel.
        float Px(int c, int r, int col) => c * 24 + r * 6 + col;
        Assert.Equal(new[] { Px(0, 2, 2), Px(0, 2, 3), Px(0, 3, 2), Px(0, 3, 3), Px(1, 2, 2), Px(1, 2, 3), Px(1, 3, 2), Px(1, 3, 3) },
            y.Span.Slice(4 * 8, 8).ToArray());
    }

    [Fact]
    public void Vit_preset_has_the_peer_parameter_count_and_pytorch_names()
    {
        var model = Presets.Spec("vit").Build(seed: 1);
        Assert.Equal(93_962, model.ParameterCount);
        var names = model.Store.All.Select(p => $"{p.Name} {Tensor.ShapeString(p.Shape)}").ToList();
        Assert.Contains("cls.class_token (1,1,64)", names);
        Assert.Contains("pos.pos_embedding (1,50,64)", names);
        Assert.Contains("block1.self_attn.in_proj_weight (192,64)", names);
        Assert.Contains("block1.self_attn.in_proj_bias (192)", names);
        Assert.Contains("block2.self_attn.out_proj.weight (64,64)", names);
        Assert.Contains("block2.linear1.weight (128,64)", names);
        Assert.Contains("block2.linear2.weight (64,128)", names);
        Assert.Contains("stem1.weight (32,1,3,3)", names);
        Assert.Contains("stem2.weight (64,32,3,3)", names);
        Assert.Contains("embed.weight (64,64)", names);
        Assert.Contains("block1.norm1.weight (64)", names);
        Assert.Equal([10], model.OutputShape);
    }

    [Fact]
    public void Vit_spec_errors_name_the_layer_and_the_fix()
    {
        var e = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""
            {"input":[1,28,28],"layers":[{"type":"patches","size":7},{"type":"dense","out":30},{"type":"transformer_encoder","heads":4,"mlp":8}]}
            """));
        Assert.Contains("layers[2]", e.Message);
        Assert.Contains("divisible by 4", e.Message);
        var p = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""{"input":[1,28,28],"layers":[{"type":"patches","size":5}]}"""));
        Assert.Contains("multiples of size 5", p.Message);
        var c = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""{"input":[1,28,28],"layers":[{"type":"class_token"}]}"""));
        Assert.Contains("patches", c.Message);
    }

    private static (double Loss, float[] Grads) VitGradient(int threads)
    {
        int saved = Compute.Threads;
        Compute.Threads = threads;
        try
        {
            var m = Presets.Spec("vit").Build(seed: 4);
            var x = GradCheck.Fill(new Tensor(6, 1, 28, 28), new Random(8), r => r.NextSingle());
            double loss = m.TrainStepGradient(x, [0, 4, 2, 9, 1, 7], null, new SoftmaxCrossEntropy(), 1f / 6, new StepContext(true, Seed: 3, Step: 2, MicroBatch: 1));
            return (loss, (float[])m.Store.Grads.Clone());
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void Vit_gradient_is_bit_identical_twice_and_on_two_threads()
    {
        var a = VitGradient(1);
        var b = VitGradient(1);
        var c = VitGradient(2);
        Assert.Contains(a.Grads, g => g != 0);
        Assert.Equal(a.Loss, b.Loss);
        Assert.Equal(a.Grads, b.Grads);
        Assert.Equal(a.Loss, c.Loss);
        Assert.Equal(a.Grads, c.Grads);
    }

    [Fact]
    public void Vit_step_allocates_nothing_after_warm_up()
    {
        int saved = Compute.Threads;
        Compute.Threads = 1;
        try
        {
            var m = Presets.Spec("vit").Build(seed: 1);
            var x = GradCheck.Fill(new Tensor(4, 1, 28, 28), new Random(1), null);
            int[] labels = [1, 2, 3, 4];
            var loss = new SoftmaxCrossEntropy();
            void Step(int s) => m.TrainStepGradient(x, labels, null, loss, 0.25f, new StepContext(true, Seed: 3, Step: s));
            for (int s = 0; s < 3; s++) Step(s);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int s = 3; s < 6; s++) Step(s);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally { Compute.Threads = saved; }
    }
}
