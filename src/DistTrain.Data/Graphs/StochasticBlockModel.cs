// A seeded stochastic block model with noisy features (Holland, Laskey and Leinhardt 1983): node v belongs to block
// v mod C; an edge joins two nodes of one block with probability p_in and of different blocks with p_out, drawn
// independently for every pair; features are the block's centre plus Gaussian noise. The graph carries the label
// through homophily, the features through their centres, and neither alone is certain: a GCN, which averages noisy
// features over neighbours, should beat both a features-only classifier and label propagation.
using DistTrain.Data.Plans;

namespace DistTrain.Data.Graphs;

public sealed record SbmOptions(int Nodes = 1000, int Classes = 4, double DegreeIn = 4, double DegreeOut = 2, int Features = 16,
    double Noise = 2.5, int Seed = 0)
{
    public void Validate()
    {
        if (Classes < 2) throw new ArgumentException($"A stochastic block model needs at least 2 classes, not {Classes}.");
        if (Nodes < 2 * Classes) throw new ArgumentException($"A stochastic block model with {Classes} classes needs at least {2 * Classes} nodes, not {Nodes}.");
        if (Features < 1) throw new ArgumentException($"features must be a positive integer, not {Features}.");
        if (!(DegreeIn >= 0) || !(DegreeOut >= 0) || !double.IsFinite(DegreeIn + DegreeOut))
            throw new ArgumentException($"degree-in ({DegreeIn}) and degree-out ({DegreeOut}) must be finite and ≥ 0.");
        if (PIn > 1 || POut > 1)
            throw new ArgumentException($"degree-in {DegreeIn} / degree-out {DegreeOut} ask for edge probabilities {PIn:G3} / {POut:G3} above 1; lower them or raise n.");
        if (!(Noise >= 0) || !double.IsFinite(Noise)) throw new ArgumentException($"noise must be finite and ≥ 0, not {Noise}.");
    }

    /// <summary>Within-block edge probability: the expected within-block degree over the other members of a block.</summary>
    public double PIn => DegreeIn / (Nodes / (double)Classes - 1);
    /// <summary>Between-block edge probability: the expected between-block degree over the members of other blocks.</summary>
    public double POut => DegreeOut / (Nodes - Nodes / (double)Classes);
}

public static class StochasticBlockModel
{
    const ulong Domain = 0x53424D4752415048; // "SBMGRAPH"

    public static Graph Create(SbmOptions o)
    {
        o.Validate();
        int n = o.Nodes, c = o.Classes, f = o.Features;
        var labels = new int[n];
        for (int v = 0; v < n; v++) labels[v] = v % c;
        // Separate streams for edges, centres and noise, so changing the noise leaves the graph as it was.
        var edgeRng = Xoshiro256.ForKey(Domain, unchecked((ulong)o.Seed), 1);
        var edges = new List<(int, int)>();
        double pIn = o.PIn, pOut = o.POut;
        for (int u = 0; u < n; u++)
            for (int v = u + 1; v < n; v++)
                if (edgeRng.NextDouble() < (labels[u] == labels[v] ? pIn : pOut)) edges.Add((u, v));
        // Float-rounded Gaussians: a ulp of difference in Math.Log between C runtimes stays below float precision.
        var centreRng = Xoshiro256.ForKey(Domain, unchecked((ulong)o.Seed), 2);
        var centres = new float[c * f];
        for (int i = 0; i < centres.Length; i++) centres[i] = (float)centreRng.NextGaussian();
        var noiseRng = Xoshiro256.ForKey(Domain, unchecked((ulong)o.Seed), 3);
        var x = new float[n * f];
        for (int v = 0; v < n; v++)
            for (int j = 0; j < f; j++)
                x[v * f + j] = centres[labels[v] * f + j] + (float)(o.Noise * (float)noiseRng.NextGaussian());
        return new Graph($"sbm(n={n},classes={c},seed={o.Seed})", n, edges, x, labels, c);
    }

    /// <summary>The first <paramref name="perClass"/> nodes of each class in a seeded permutation: the labelled nodes
    /// (Planetoid's split takes 20 per class).</summary>
    public static int[] LabelledNodes(Graph g, int perClass, int seed)
    {
        if (perClass < 1) throw new ArgumentException($"labels per class must be ≥ 1, not {perClass}.");
        var perm = Enumerable.Range(0, g.Nodes).ToArray();
        Xoshiro256.ForKey(Domain, unchecked((ulong)seed), 4).Shuffle(perm);
        var taken = new int[g.Classes];
        var chosen = new List<int>();
        foreach (var v in perm)
            if (taken[g.Labels[v]] < perClass) { taken[g.Labels[v]]++; chosen.Add(v); }
        if (taken.Any(t => t < perClass))
            throw new ArgumentException($"Graph {g.Name} has a class with fewer than {perClass} nodes; lower labels.");
        chosen.Sort();
        return chosen.ToArray();
    }
}
