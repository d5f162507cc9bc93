// Graph data: the karate club against Zachary's published counts, the packed neighbourhood samples against the
// definition of Â, the stochastic block model's seeding and degrees, label propagation on graphs whose answer is
// known, and the graph:... dataset texts.
using DistTrain.Data.Graphs;
using DistTrain.Data.Sources;
using Xunit;

namespace DistTrain.Data.Tests;

public class GraphTests
{
    [Fact]
    public void Karate_club_has_zacharys_34_members_78_edges_and_two_factions()
    {
        var g = KarateClub.Create();
        Assert.Equal(34, g.Nodes);
        Assert.Equal(78, g.EdgeCount);
        Assert.Equal(156, Enumerable.Range(0, 34).Sum(g.Degree));
        Assert.Equal(16, g.Degree(KarateClub.Instructor));
        Assert.Equal(17, g.Degree(KarateClub.Administrator));
        Assert.Equal(1, g.Degree(11));                         // member 12 in the paper's numbering knows only the instructor
        Assert.Equal(17, g.Labels.Count(l => l == 0));         // 17 stayed with Mr. Hi, 17 followed the officers
        Assert.Equal(0, g.Labels[8]);                          // member 9: the one Zachary's flow model placed wrongly
        Assert.Equal(1, g.Labels[9]);
        for (int v = 0; v < 34; v++)
            foreach (var u in g.Neighbours(v)) Assert.Contains(v, g.Neighbours(u).ToArray());
    }

    [Fact]
    public void Packed_sample_holds_the_rows_of_the_normalized_adjacency()
    {
        var g = KarateClub.Create();
        var d = g.Samples([9], hops: 2, "one");
        int k = d.SampleShape[0], s = g.BlockWidth, w = 3 * s;
        Assert.Equal(34, s);
        Assert.Equal([k, 102], d.SampleShape);
        var x = d.Features;
        // Row 0 is node 9 (neighbours 2 and 33, degree 2): its local order is 9, then ring 1 = {2, 33}.
        Assert.Equal(1f, x[9]);                                   // one-hot feature of node 9
        float[] idx = [x[s], x[s + 1], x[s + 2]], wt = [x[2 * s], x[2 * s + 1], x[2 * s + 2]];
        Assert.Equal([1f, 0f, 2f], idx);                          // 2, 9 (self), 33 in ascending node order
        Assert.Equal(1 / MathF.Sqrt(3 * 11), wt[0], 6);           // deg 2 = 10
        Assert.Equal(1 / 3f, wt[1], 6);                           // self loop: 1/(2+1)
        Assert.Equal(1 / MathF.Sqrt(3 * 18), wt[2], 6);           // deg 33 = 17
        Assert.Equal(0f, x[2 * s + 3]);                           // unused slots are zero
        // Row 1 is node 2: a full row of Â (degree 10 + self loop = 11 entries).
        Assert.Equal(1f, x[w + 2]);
        Assert.Equal(11, Enumerable.Range(0, s).Count(e => x[w + 2 * s + e] != 0f));
        // The outermost ring carries features only.
        var rows = Enumerable.Range(0, k).Where(r => x.AsSpan(r * w + 2 * s, s).ToArray().Any(v => v != 0)).ToArray();
        Assert.Equal([0, 1, 2], rows);
        Assert.Equal(1, d.Labels[0]);                             // node 9 followed the officers
    }

    [Fact]
    public void Stochastic_block_model_is_seeded_and_has_the_asked_degrees()
    {
        var o = new SbmOptions(Nodes: 2000, Classes: 4, DegreeIn: 4, DegreeOut: 2, Features: 8, Noise: 1, Seed: 7);
        var a = StochasticBlockModel.Create(o);
        var b = StochasticBlockModel.Create(o);
        Assert.Equal(a.Features, b.Features);
        Assert.Equal(a.EdgeCount, b.EdgeCount);
        Assert.NotEqual(a.EdgeCount, StochasticBlockModel.Create(o with { Seed = 8 }).EdgeCount);
        double within = 0, between = 0;
        for (int v = 0; v < a.Nodes; v++)
            foreach (var u in a.Neighbours(v))
                if (a.Labels[u] == a.Labels[v]) within++; else between++;
        Assert.InRange(within / a.Nodes, 3.8, 4.2);        // expected 4, sd of the mean ≈ 0.045
        Assert.InRange(between / a.Nodes, 1.85, 2.15);     // expected 2
        // Features: the block centre plus noise of sd 1.
        var sameNoise = StochasticBlockModel.Create(o with { Noise = 0 });
        Assert.Equal(a.EdgeCount, sameNoise.EdgeCount);     // noise has its own stream: same graph
        double sq = 0;
        for (int i = 0; i < a.Features.Length; i++) sq += Math.Pow(a.Features[i] - sameNoise.Features[i], 2);
        Assert.InRange(Math.Sqrt(sq / a.Features.Length), 0.95, 1.05);
        var labelled = StochasticBlockModel.LabelledNodes(a, 20, 7);
        Assert.Equal(80, labelled.Length);
        Assert.All(Enumerable.Range(0, 4), c => Assert.Equal(20, labelled.Count(v => a.Labels[v] == c)));
    }

    [Fact]
    public void Label_propagation_gives_the_harmonic_solution()
    {
        // A path 0-1-2-3-4-5-6 with 0 labelled 0 and 6 labelled 1: the harmonic function is linear, f1(v) = v/6,
        // so nodes 1-2 take class 0, 4-5 class 1, and the middle node is a tie (the lower class wins).
        var x = new float[7];
        var path = new Graph("path", 7, Enumerable.Range(0, 6).Select(i => (i, i + 1)), x, [0, 0, 0, 0, 1, 1, 1], 2);
        Assert.Equal([0, 0, 0, 0, 1, 1, 1], LabelPropagation.Predict(path, [0, 6]));
        // Two triangles joined by one edge, one label in each: every node follows its own triangle.
        var two = new Graph("triangles", 6, [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)], new float[6], [0, 0, 0, 1, 1, 1], 2);
        Assert.Equal(1.0, LabelPropagation.Accuracy(two, [0, 5]));
        // A node no label can reach predicts nothing.
        var apart = new Graph("apart", 3, [(0, 1)], new float[3], [0, 0, 1], 2);
        Assert.Equal(-1, LabelPropagation.Predict(apart, [0])[2]);
    }

    [Fact]
    public void Graph_dataset_texts_load_and_refuse_mistakes_by_name()
    {
        var (train, test) = DatasetSpec.Parse("graph:karate").Load();
        Assert.Equal(2, train.Count);
        Assert.Equal([0, 1], train.Labels);                  // the instructor and the administrator
        Assert.Equal(32, test.Count);
        Assert.Equal(train.SampleShape, test.SampleShape);
        var (sTrain, sTest) = DatasetSpec.Parse("graph:sbm:n=60:classes=3:labels=4:features=6:seed=2").Load();
        Assert.Equal(12, sTrain.Count);
        Assert.Equal(48, sTest.Count);
        Assert.Equal(3, sTrain.Classes);
        Assert.Contains("unknown graph 'cora'", Assert.Throws<ArgumentException>(() => DatasetSpec.Parse("graph:cora")).Message);
        Assert.Contains("valid: n, classes", Assert.Throws<ArgumentException>(() => DatasetSpec.Parse("graph:sbm:margin=2")).Message);
        Assert.Contains("takes only labels", Assert.Throws<ArgumentException>(() => DatasetSpec.Parse("graph:karate:n=10")).Message);
        Assert.Contains("above 1", Assert.Throws<ArgumentException>(() => DatasetSpec.Parse("graph:sbm:n=20:degree-in=30")).Message);
    }
}
