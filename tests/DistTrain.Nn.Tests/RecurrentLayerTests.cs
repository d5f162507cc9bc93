// RNN, LSTM and GRU: forward values against a naive double-precision implementation of PyTorch's
// formulas, BPTT gradients against finite differences (many-to-one and many-to-many, odd shapes),
// PyTorch parameter names and shapes, init range, bad input, and no allocation in a steady step.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Tests.Support;
using DistTrain.Tensors;
using DistTrain.Tests;
using Xunit;

namespace DistTrain.Nn.Tests;

[Collection("Serial")]  // changes the global Compute.Threads and Simd.Path, measures allocations
public class RecurrentLayerTests
{
    private static readonly StepContext Train = new(true);

    private static RecurrentLayer Make(string kind, int hidden, bool seq) => kind switch
    {
        "rnn" => new Rnn(hidden, seq),
        "lstm" => new Lstm(hidden, seq),
        "gru" => new Gru(hidden, seq),
        _ => throw new ArgumentException(kind),
    };

    public static TheoryData<string, int, int, int, int, bool> GradShapes()
    {
        var data = new TheoryData<string, int, int, int, int, bool>();
        foreach (var kind in new[] { "rnn", "lstm", "gru" })
        {
            data.Add(kind, 1, 1, 7, 5, false);
            data.Add(kind, 3, 5, 7, 5, false);
            data.Add(kind, 3, 5, 7, 5, true);
            data.Add(kind, 1, 5, 2, 3, true);
            data.Add(kind, 2, 3, 4, 9, true);   // H = 9: vector body plus scalar tail in the gate kernels
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(GradShapes))]
    public void Gradients_match_finite_differences(string kind, int b, int t, int f, int h, bool seq)
    {
        var rng = new Random(b * 1000 + t * 100 + f * 10 + h);
        var layer = Make(kind, h, seq);
        var store = GradCheckRnn.Bind(layer, [t, f], seed: h);
        var x = GradCheckRnn.RandomTensor(rng, 1f, b, t, f);
        Assert.True(GradCheckRnn.Check(layer, store, x, Train) > 1e-3);
    }

    public static TheoryData<string, int, int, bool> ForwardShapes()
    {
        var data = new TheoryData<string, int, int, bool>();
        foreach (var kind in new[] { "rnn", "lstm", "gru" })
        {
            data.Add(kind, 1, 1, true);   // one step of the cell
            data.Add(kind, 3, 5, true);
            data.Add(kind, 3, 5, false);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ForwardShapes))]
    public void Forward_matches_naive_double_precision_pytorch_formulas(string kind, int b, int t, bool seq)
    {
        const int f = 7, h = 5;
        var rng = new Random(b + t);
        var layer = Make(kind, h, seq);
        var store = GradCheckRnn.Bind(layer, [t, f], seed: 3);
        GradCheckRnn.Perturb(store, rng, 0.3f);
        var x = GradCheckRnn.RandomTensor(rng, 1.5f, b, t, f);
        var y = layer.Forward(x, Train);
        var expected = NaiveForward(kind, x, layer.WeightIh.Value, layer.WeightHh.Value, layer.BiasIh.Value, layer.BiasHh.Value, h);
        Assert.Equal(seq ? [b, t, h] : new[] { b, h }, y.Shape);
        for (int i = 0; i < b; i++)
            for (int s = 0; s < (seq ? t : 1); s++)
                for (int j = 0; j < h; j++)
                {
                    int step = seq ? s : t - 1;
                    float got = seq ? y[(i * t + s) * h + j] : y[i * h + j];
                    Assert.Equal(expected[i, step, j], got, 2e-5);
                }
    }

    /// <summary>Returns h[b, t, j] for every step, straight from torch.nn.RNN/LSTM/GRU's documented formulas.</summary>
    private static double[,,] NaiveForward(string kind, Tensor x, Tensor wih, Tensor whh, Tensor bih, Tensor bhh, int h)
    {
        int b = x.Dim(0), t = x.Dim(1), f = x.Dim(2), g = wih.Dim(0);
        var result = new double[b, t, h];
        static double Sig(double v) => 1 / (1 + Math.Exp(-v));
        for (int i = 0; i < b; i++)
        {
            var hp = new double[h]; var c = new double[h];
            for (int s = 0; s < t; s++)
            {
                var gi = new double[g]; var gh = new double[g];
                for (int k = 0; k < g; k++)
                {
                    gi[k] = bih[k]; gh[k] = bhh[k];
                    for (int q = 0; q < f; q++) gi[k] += (double)wih[k * f + q] * x[(i * t + s) * f + q];
                    for (int q = 0; q < h; q++) gh[k] += (double)whh[k * h + q] * hp[q];
                }
                var hn = new double[h];
                for (int j = 0; j < h; j++)
                {
                    switch (kind)
                    {
                        case "rnn":
                            hn[j] = Math.Tanh(gi[j] + gh[j]);
                            break;
                        case "lstm":
                            double ig = Sig(gi[j] + gh[j]), fg = Sig(gi[h + j] + gh[h + j]);
                            double gg = Math.Tanh(gi[2 * h + j] + gh[2 * h + j]), og = Sig(gi[3 * h + j] + gh[3 * h + j]);
                            c[j] = fg * c[j] + ig * gg;
                            hn[j] = og * Math.Tanh(c[j]);
                            break;
                        default:
                            double r = Sig(gi[j] + gh[j]), z = Sig(gi[h + j] + gh[h + j]);
                            double n = Math.Tanh(gi[2 * h + j] + r * gh[2 * h + j]);
                            hn[j] = (1 - z) * n + z * hp[j];
                            break;
                    }
                }
                hp = hn;
                for (int j = 0; j < h; j++) result[i, s, j] = hp[j];
            }
        }
        return result;
    }

    [Fact]
    public void Lstm_one_step_matches_a_hand_computed_cell()
    {
        // H = 1, F = 1, x = 1, h₋₁ = c₋₁ = 0: pre-activations are W_ih + b_ih + b_hh per gate.
        var lstm = new Lstm(1);
        var store = GradCheckRnn.Bind(lstm, [1, 1]);
        float[] wih = [0.5f, -1f, 2f, 1f];          // i, f, g, o
        wih.CopyTo(lstm.WeightIh.Value.Span);
        lstm.BiasIh.Value.Clear(); lstm.BiasHh.Value.Clear();
        var y = lstm.Forward(new Tensor([1f], 0, 1, 1, 1), Train);
        // i = σ(0.5) = 0.6224593, g = tanh(2) = 0.9640276, c = i·g = 0.6000680, o = σ(1) = 0.7310586,
        // h = o·tanh(c) = 0.7310586 · 0.5370979 = 0.3926500 (f is irrelevant: c₋₁ = 0).
        Assert.Equal(0.3926500, y[0], 2e-6);
    }

    [Fact]
    public void Gru_one_step_matches_a_hand_computed_cell()
    {
        // H = 1, F = 1, x = 1, h₋₁ = 0: r = σ(w_ir + b_hr), z = σ(w_iz), n = tanh(w_in + r·b_hn), h = (1−z)·n.
        var gru = new Gru(1);
        GradCheckRnn.Bind(gru, [1, 1]);
        float[] wih = [1f, -0.5f, 0.25f];            // r, z, n
        wih.CopyTo(gru.WeightIh.Value.Span);
        gru.BiasIh.Value.Clear();
        float[] bhh = [0f, 0f, 2f];
        bhh.CopyTo(gru.BiasHh.Value.Span);
        var y = gru.Forward(new Tensor([1f], 0, 1, 1, 1), Train);
        // r = σ(1) = 0.7310586, z = σ(−0.5) = 0.3775407, n = tanh(0.25 + 0.7310586·2) = tanh(1.7121172)
        // = 0.9369068, h = 0.6224593 · 0.9369068 = 0.5831864 (b_hn inside r⊙(·) is what PyTorch does).
        Assert.Equal(0.5831864, y[0], 2e-6);
    }

    [Theory]
    [InlineData("rnn", 1)]
    [InlineData("lstm", 4)]
    [InlineData("gru", 3)]
    public void Parameters_have_pytorch_names_shapes_and_init_range(string kind, int gates)
    {
        const int h = 16, f = 7;
        var layer = Make(kind, h, seq: true);
        Assert.Equal([5, h], layer.Build([5, f]));
        var store = new ParameterStore(layer.OwnParams);
        layer.ResetParameters(new Random(4));
        Assert.Equal(["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"], layer.OwnParams.Select(p => p.LocalName));
        Assert.Equal([gates * h, f], layer.WeightIh.Shape);
        Assert.Equal([gates * h, h], layer.WeightHh.Shape);
        Assert.Equal([gates * h], layer.BiasIh.Shape);
        Assert.Equal([gates * h], layer.BiasHh.Shape);
        Assert.Equal(gates * h * (f + h + 2), store.Count);
        float bound = 1f / MathF.Sqrt(h);
        Assert.All(store.Values, v => Assert.InRange(v, -bound, bound));
        Assert.True(store.Values.Max() > 0.8f * bound && store.Values.Min() < -0.8f * bound);
        Assert.Equal($"{kind.ToUpperInvariant()}(7, 16, batch_first=True, return_sequences=True)", layer.ToString());
        Assert.Equal([h], Make(kind, h, seq: false).Build([5, f]));
    }

    [Fact]
    public void Bad_input_is_rejected_with_a_clear_message()
    {
        Assert.Throws<ArgumentException>(() => new Lstm(0));
        Assert.Throws<ArgumentException>(() => new Gru(4).Build([7]));
        Assert.Throws<ArgumentException>(() => new Rnn(4, inputSize: 3).Build([5, 7]));
        var lstm = new Lstm(4);
        GradCheckRnn.Bind(lstm, [5, 7]);
        var ex = Assert.Throws<ArgumentException>(() => lstm.Forward(new Tensor(2, 5, 6), Train));
        Assert.Contains("(B,T,7)", ex.Message);
        Assert.Throws<ArgumentException>(() => lstm.Forward(new Tensor(2, 35), Train));
        lstm.Forward(new Tensor(2, 5, 7), Train);
        Assert.Throws<ArgumentException>(() => lstm.Backward(new Tensor(2, 5, 4)));
    }

    [Fact]
    public void Sequence_length_may_change_between_calls()
    {
        var rng = new Random(8);
        var gru = new Gru(5, returnSequences: true);
        var store = GradCheckRnn.Bind(gru, [5, 3]);
        GradCheckRnn.Check(gru, store, GradCheckRnn.RandomTensor(rng, 1f, 2, 2, 3), Train);
        GradCheckRnn.Check(gru, store, GradCheckRnn.RandomTensor(rng, 1f, 3, 4, 3), Train);
    }

    [Theory]
    [InlineData("rnn", false)]
    [InlineData("lstm", false)]
    [InlineData("lstm", true)]
    [InlineData("gru", true)]
    public void A_steady_state_step_allocates_nothing(string kind, bool seq)
    {
        const int b = 8, t = 6, f = 7, h = 12;
        var rng = new Random(2);
        var layer = Make(kind, h, seq);
        GradCheckRnn.Bind(layer, [t, f]);
        var x = GradCheckRnn.RandomTensor(rng, 1f, b, t, f);
        var dy = seq ? GradCheckRnn.RandomTensor(rng, 1f, b, t, h) : GradCheckRnn.RandomTensor(rng, 1f, b, h);
        Assert.Equal(0, GradCheckRnn.AllocatedBytes(() => { layer.Forward(x, Train); layer.Backward(dy); }));
    }
    public static IEnumerable<object[]> KindsOnEveryPath() =>
        SimdRows.Cross(new[] { "rnn", "lstm", "gru" }.Select(k => new object[] { k }));

    [SkippableTheory, MemberData(nameof(KindsOnEveryPath))]
    public void Gradients_are_bit_identical_across_thread_counts_and_simd_paths(string kind, SimdPath path)
    {
        SimdRows.Require(path);
        var rng = new Random(11);
        var layer = Make(kind, 33, seq: true);
        var store = GradCheckRnn.Bind(layer, [6, 29]);
        var x = GradCheckRnn.RandomTensor(rng, 1f, 17, 6, 29);
        var dy = GradCheckRnn.RandomTensor(rng, 1f, 17, 6, 33);
        float[] Run()
        {
            store.ZeroGrad();
            var y = layer.Forward(x, Train).ToArray();
            var dx = layer.Backward(dy).ToArray();
            return [.. y, .. dx, .. store.Grads];
        }
        int threads = Compute.Threads;
        try
        {
            Compute.Threads = 1;
            float[] reference;
            using (Simd.Force(SimdPath.Portable)) reference = Run();
            using var _ = Simd.Force(path);
            foreach (int t in new[] { 1, 2 })
            {
                if (path == SimdPath.Portable && t == 1) continue;   // that run is the reference
                Compute.Threads = t;
                Assert.Equal(reference, Run());
            }
        }
        finally { Compute.Threads = threads; }
    }
    [Theory]
    [InlineData("lstm", false)]
    [InlineData("gru", true)]
    [InlineData("rnn", true)]
    public void Skipping_dx_as_first_layer_leaves_parameter_gradients_unchanged(string kind, bool seq)
    {
        var rng = new Random(21);
        var layer = Make(kind, 6, seq);
        var store = GradCheckRnn.Bind(layer, [4, 5]);
        var x = GradCheckRnn.RandomTensor(rng, 1f, 3, 4, 5);
        var dy = seq ? GradCheckRnn.RandomTensor(rng, 1f, 3, 4, 6) : GradCheckRnn.RandomTensor(rng, 1f, 3, 6);
        layer.Forward(x, Train);
        layer.Backward(dy);
        var full = store.Grads.ToArray();
        store.ZeroGrad();
        layer.ComputeInputGrad = false;
        layer.Forward(x, Train);
        Assert.Equal([3, 4, 5], layer.Backward(dy).Shape);
        Assert.Equal(full, store.Grads);
    }
}
