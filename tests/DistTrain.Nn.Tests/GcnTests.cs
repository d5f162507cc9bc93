// The graph convolution and the two-layer GCN: against the full-graph dense computation Â X Wᵀ + b in double (the
// packed per-node samples must give every node exactly the full-graph GCN's output), finite differences through the
// features and the weights of Â, the preset on the karate club, bits that do not follow the thread count, and a
// steady-state step that allocates nothing.
using DistTrain.Data.Graphs;
using DistTrain.Data.Sources;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using Xunit;

namespace DistTrain.Nn.Tests;

public class GcnTests
{
    /// <summary>Â = D^-1/2 (A+I) D^-1/2 as a dense N×N matrix in double, straight from the definition.</summary>
    private static double[,] DenseNormalizedAdjacency(Graph g)
    {
        int n = g.Nodes;
        var a = new double[n, n];
        for (int v = 0; v < n; v++)
        {
            a[v, v] = 1;
            foreach (var u in g.Neighbours(v)) a[v, u] = 1;
        }
        var deg = new double[n];
        for (int v = 0; v < n; v++) for (int u = 0; u < n; u++) deg[v] += a[v, u];
        for (int v = 0; v < n; v++) for (int u = 0; u < n; u++) a[v, u] /= Math.Sqrt(deg[v] * deg[u]);
        return a;
    }

    /// <summary>Â H Wᵀ + b in double; h (N, in), w (out, in).</summary>
    private static double[,] DenseLayer(double[,] a, double[,] h, float[] w, float[] b, int outF)
    {
        int n = a.GetLength(0), inF = h.GetLength(1);
        var hw = new double[n, outF];
        for (int v = 0; v < n; v++)
            for (int o = 0; o < outF; o++)
                for (int i = 0; i < inF; i++) hw[v, o] += h[v, i] * w[o * inF + i];
        var y = new double[n, outF];
        for (int v = 0; v < n; v++)
            for (int o = 0; o < outF; o++)
            {
                y[v, o] = b[o];
                for (int u = 0; u < n; u++) y[v, o] += a[v, u] * hw[u, o];
            }
        return y;
    }

    private static double[,] Features(Graph g)
    {
        var x = new double[g.Nodes, g.FeatureCount];
        for (int v = 0; v < g.Nodes; v++) for (int j = 0; j < g.FeatureCount; j++) x[v, j] = g.Features[v * g.FeatureCount + j];
        return x;
    }

    private static Tensor Batch(DistTrain.Data.Dataset d)
    {
        var x = new Tensor([d.Count, .. d.SampleShape]);
        d.Features.CopyTo(x.Buffer, 0);
        return x;
    }

    private static Graph SmallSbm(int seed = 3) =>
        StochasticBlockModel.Create(new SbmOptions(Nodes: 24, Classes: 3, DegreeIn: 2.5, DegreeOut: 1, Features: 5, Noise: 1, Seed: seed));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Graph_conv_matches_the_dense_product_at_every_node(bool karate)
    {
        var g = karate ? KarateClub.Create() : SmallSbm();
        var all = g.Samples(Enumerable.Range(0, g.Nodes).ToArray(), hops: 1, "all");
        var conv = new GraphConv(g.BlockWidth, 5, outputRows: 1);
        var model = new Sequential(all.SampleShape, [("conv", (Layer)conv)], seed: 4);
        var rng = new Random(2);
        foreach (ref var v in conv.Bias!.Value.Span) v = (float)(rng.NextDouble() - 0.5);
        var y = model.Forward(Batch(all), StepContext.Eval);

        // The block's features are zero-padded from F to S columns: the reference uses the weight's first F columns.
        int s = g.BlockWidth, f = g.FeatureCount;
        var w = new float[5 * f];
        for (int o = 0; o < 5; o++) conv.Weight.Value.Span.Slice(o * s, f).CopyTo(w.AsSpan(o * f, f));
        var reference = DenseLayer(DenseNormalizedAdjacency(g), Features(g), w, conv.Bias.Value.ToArray(), 5);
        for (int v = 0; v < g.Nodes; v++)
            for (int o = 0; o < 5; o++)
                Assert.True(Math.Abs(y[v * 5 + o] - reference[v, o]) <= 1e-5 + 1e-5 * Math.Abs(reference[v, o]),
                    $"node {v} output {o}: {y[v * 5 + o]} vs {reference[v, o]}");
    }

    [Fact]
    public void Gcn_on_two_hop_samples_equals_the_full_graph_gcn_at_every_node()
    {
        var g = KarateClub.Create();
        var all = g.Samples(Enumerable.Range(0, g.Nodes).ToArray(), hops: 2, "all");
        Assert.Equal([33, 102], all.SampleShape);   // the gcn preset's input
        var model = Presets.Spec("gcn").Build(seed: 3);
        var gcn = (Gcn)model.Layers[0];
        var rng = new Random(5);
        foreach (ref var v in gcn.Conv1.Bias!.Value.Span) v = (float)(rng.NextDouble() - 0.5);   // Kipf's init zeroes biases
        foreach (ref var v in gcn.Conv2.Bias!.Value.Span) v = (float)(rng.NextDouble() - 0.5);
        var z = model.Forward(Batch(all), StepContext.Eval);   // eval: dropout is the identity

        var a = DenseNormalizedAdjacency(g);
        var h = DenseLayer(a, Features(g), gcn.Conv1.Weight.Value.ToArray(), gcn.Conv1.Bias.Value.ToArray(), 16);
        for (int v = 0; v < g.Nodes; v++) for (int j = 0; j < 16; j++) h[v, j] = Math.Max(0, h[v, j]);
        var reference = DenseLayer(a, h, gcn.Conv2.Weight.Value.ToArray(), gcn.Conv2.Bias.Value.ToArray(), 2);
        for (int v = 0; v < g.Nodes; v++)
            for (int o = 0; o < 2; o++)
                Assert.True(Math.Abs(z[v * 2 + o] - reference[v, o]) <= 1e-5 + 1e-5 * Math.Abs(reference[v, o]),
                    $"node {v} logit {o}: {z[v * 2 + o]} vs {reference[v, o]}");
    }

    [Fact]
    public void Graph_conv_gradients_match_finite_differences()
    {
        var g = SmallSbm();
        var d = g.Samples([0, 5, 11], hops: 2, "some");
        var model = new Sequential(d.SampleShape, [("conv", (Layer)new GraphConv(g.BlockWidth, 4))], seed: 6) { InputGrad = true };
        var rng = new Random(9);
        foreach (ref var v in model.Store.Values.AsSpan()) v += (float)(rng.NextDouble() - 0.5) * 0.2f;
        GradCheck.Model(model, Batch(d), new GradCheck.Options(MaxChecks: 200));
    }

    [Fact]
    public void Gcn_gradients_match_finite_differences_with_dropout_on()
    {
        var g = SmallSbm(seed: 4);
        var d = g.Samples([1, 7, 20], hops: 2, "some");
        var model = new Sequential(d.SampleShape, [("gcn", (Layer)new Gcn(g.BlockWidth, 6, 3, dropout: 0.3f))], seed: 2) { InputGrad = true };
        var rng = new Random(3);
        foreach (ref var v in model.Store.Values.AsSpan()) v += (float)(rng.NextDouble() - 0.5) * 0.3f;
        GradCheck.Model(model, Batch(d), new GradCheck.Options(MaxChecks: 200));
    }

    [Fact]
    public void A_sample_that_is_not_a_packed_graph_is_refused_by_name()
    {
        var model = new Sequential([4, 9], [("conv", (Layer)new GraphConv(3, 2))], seed: 1);
        var x = new Tensor(1, 4, 9);
        x[3] = 7f;   // row 0's first slot names local node 7 of 4
        x[6] = 0.5f;
        var e = Assert.Throws<ArgumentException>(() => model.Forward(x, StepContext.Eval));
        Assert.Contains("not a packed graph sample", e.Message);
        var spec = Assert.Throws<ModelSpecException>(() => ModelSpec.Parse("""{"input":[1,28,28],"layers":[{"type":"gcn","out":2}]}"""));
        Assert.Contains("graph:karate", spec.Message);
    }

    [Fact]
    public void Gcn_preset_has_gcnconv_names_and_glorot_init()
    {
        var model = Presets.Spec("gcn").Build(seed: 1);
        var names = model.Store.Learned.Select(p => $"{p.Name} {Tensor.ShapeString(p.Shape)}").ToList();
        Assert.Equal(["gcn.conv1.weight (16,34)", "gcn.conv1.bias (16)", "gcn.conv2.weight (2,16)", "gcn.conv2.bias (2)"], names);
        Assert.Equal(16 * 34 + 16 + 2 * 16 + 2, model.ParameterCount);
        float bound = MathF.Sqrt(6f / (34 + 16));
        var w1 = ((Gcn)model.Layers[0]).Conv1.Weight.Value.ToArray();
        Assert.All(w1, v => Assert.InRange(v, -bound, bound));
        Assert.True(w1.Max() > 0.8f * bound && w1.Min() < -0.8f * bound);
        Assert.All(((Gcn)model.Layers[0]).Conv1.Bias!.Value.ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Gcn_preset_labels_the_karate_club_from_one_member_per_faction()
    {
        var d = Presets.Defaults("gcn");
        var job = new TrainJob
        {
            ModelSpecJson = Presets.Spec("gcn").CanonicalJson, Dataset = d.Dataset, Epochs = d.Epochs, BatchSize = d.BatchSize,
            Optimizer = d.Optimizer, Lr = d.Lr, Schedule = d.Schedule, WeightDecay = d.WeightDecay, Seed = 1,
        };
        var (train, test) = DatasetSpec.Parse(job.Dataset).Load();
        Assert.Equal(2, train.Count);
        Assert.Equal(32, test.Count);
        var trainer = job.CreateTrainer(train.Count);
        var last = trainer.Fit(train, test);
        Assert.True(last.TestAccuracy >= 0.9, $"karate test accuracy {last.TestAccuracy:P1} after {d.Epochs} epochs");
    }

    private static (double Loss, float[] Grads) PresetGradient(int threads)
    {
        int saved = Compute.Threads;
        Compute.Threads = threads;
        try
        {
            var m = Presets.Spec("gcn").Build(seed: 4);
            var g = KarateClub.Create();
            var d = g.Samples([0, 33, 8, 2, 30], hops: 2, "five");
            double loss = m.TrainStepGradient(Batch(d), d.Labels, null, new SoftmaxCrossEntropy(), 0.2f, new StepContext(true, Seed: 3, Step: 2, MicroBatch: 1));
            return (loss, (float[])m.Store.Grads.Clone());
        }
        finally { Compute.Threads = saved; }
    }

    [Fact]
    public void Gcn_gradient_is_bit_identical_twice_and_on_two_threads()
    {
        var a = PresetGradient(1);
        var b = PresetGradient(1);
        var c = PresetGradient(2);
        Assert.Contains(a.Grads, v => v != 0);
        Assert.Equal(a.Loss, b.Loss);
        Assert.Equal(a.Grads, b.Grads);
        Assert.Equal(a.Loss, c.Loss);
        Assert.Equal(a.Grads, c.Grads);
    }

    [Fact]
    public void Gcn_step_allocates_nothing_after_warm_up()
    {
        int saved = Compute.Threads;
        Compute.Threads = 1;
        try
        {
            var m = Presets.Spec("gcn").Build(seed: 1);
            var d = KarateClub.Create().Samples([0, 33, 5], hops: 2, "three");
            var x = Batch(d);
            var loss = new SoftmaxCrossEntropy();
            void Step(int s) => m.TrainStepGradient(x, d.Labels, null, loss, 1f / 3, new StepContext(true, Seed: 3, Step: s));
            for (int s = 0; s < 3; s++) Step(s);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int s = 3; s < 6; s++) Step(s);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally { Compute.Threads = saved; }
    }
}
