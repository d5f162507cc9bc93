// An undirected graph with node features and labels for transductive node classification, and its packing into
// per-node samples: node v's L-hop neighbourhood with the GCN's normalized adjacency Â = D^-1/2 (A+I) D^-1/2 as a
// sparse padded-row (ELL) block, so a micro-batch of target nodes is an ordinary batch of equal-shaped samples.
// Letters: N nodes, F features, K local nodes per sample, S = max(F, largest degree + 1) columns per block.
namespace DistTrain.Data.Graphs;

public sealed class Graph
{
    private readonly int[] _start, _adj;   // CSR: neighbours of v are _adj[_start[v].._start[v+1]], ascending, no self loops

    /// <param name="edges">Undirected edges (u, v), u ≠ v, each listed once in either direction.</param>
    /// <param name="features">(N, F) row-major node features.</param>
    public Graph(string name, int nodes, IEnumerable<(int U, int V)> edges, float[] features, int[] labels, int classes)
    {
        if (nodes < 1) throw new ArgumentException($"Graph {name} needs at least one node.", nameof(nodes));
        if (labels.Length != nodes) throw new ArgumentException($"Graph {name}: {labels.Length} labels for {nodes} nodes.", nameof(labels));
        if (features.Length == 0 || features.Length % nodes != 0)
            throw new ArgumentException($"Graph {name}: {features.Length} feature values do not make whole rows for {nodes} nodes.", nameof(features));
        var lists = new List<int>[nodes];
        for (int i = 0; i < nodes; i++) lists[i] = [];
        var seen = new HashSet<(int, int)>();
        foreach (var (u, v) in edges)
        {
            if ((uint)u >= (uint)nodes || (uint)v >= (uint)nodes || u == v)
                throw new ArgumentException($"Graph {name}: edge ({u},{v}) is a self loop or names a node outside 0..{nodes - 1}.", nameof(edges));
            if (!seen.Add((Math.Min(u, v), Math.Max(u, v))))
                throw new ArgumentException($"Graph {name}: edge ({u},{v}) is listed twice.", nameof(edges));
            lists[u].Add(v); lists[v].Add(u);
        }
        _start = new int[nodes + 1];
        for (int i = 0; i < nodes; i++) _start[i + 1] = _start[i] + lists[i].Count;
        _adj = new int[_start[nodes]];
        for (int i = 0; i < nodes; i++)
        {
            lists[i].Sort();
            lists[i].CopyTo(_adj, _start[i]);
        }
        foreach (var l in labels)
            if ((uint)l >= (uint)classes) throw new ArgumentException($"Graph {name}: label {l} is outside 0..{classes - 1}.", nameof(labels));
        Name = name; Nodes = nodes; Features = features; FeatureCount = features.Length / nodes; Labels = labels; Classes = classes;
        EdgeCount = seen.Count;
    }

    public string Name { get; }
    public int Nodes { get; }
    /// <summary>Undirected edges, self loops not counted.</summary>
    public int EdgeCount { get; }
    public int FeatureCount { get; }
    /// <summary>(N, F) row-major.</summary>
    public float[] Features { get; }
    public int[] Labels { get; }
    public int Classes { get; }

    public int Degree(int v) => _start[v + 1] - _start[v];
    /// <summary>Neighbours of v in ascending order (no self loop).</summary>
    public ReadOnlySpan<int> Neighbours(int v) => _adj.AsSpan(_start[v], _start[v + 1] - _start[v]);
    public int MaxDegree { get { int m = 0; for (int v = 0; v < Nodes; v++) m = Math.Max(m, Degree(v)); return m; } }

    /// <summary>Â's entry for an edge (or the self loop u = v): 1 / √((deg u + 1)(deg v + 1)), Kipf and Welling's renormalization.</summary>
    public float NormalizedWeight(int u, int v) => (float)(1.0 / Math.Sqrt((Degree(u) + 1.0) * (Degree(v) + 1.0)));

    /// <summary>Block width S of a packed sample: room for F features and for the largest row of Â (degree + self loop).</summary>
    public int BlockWidth => Math.Max(FeatureCount, MaxDegree + 1);

    /// <summary>Nodes within <paramref name="hops"/> of v: v first, then each ring in ascending node order.</summary>
    public List<int> Neighbourhood(int v, int hops, out int[] ringStart)
    {
        var order = new List<int> { v };
        var depth = new Dictionary<int, int> { [v] = 0 };
        ringStart = new int[hops + 2];
        ringStart[1] = 1;
        for (int d = 1; d <= hops; d++)
        {
            var ring = new SortedSet<int>();
            for (int i = ringStart[d - 1]; i < ringStart[d]; i++)
                foreach (var u in Neighbours(order[i]))
                    if (!depth.ContainsKey(u)) ring.Add(u);
            foreach (var u in ring) { depth[u] = d; order.Add(u); }
            ringStart[d + 1] = order.Count;
        }
        return order;
    }

    /// <summary>
    /// The local node count K of samples packed with <paramref name="hops"/>: the largest L-hop neighbourhood in the graph
    /// (every node's, so train and test samples share one shape).
    /// </summary>
    public int LocalNodes(int hops)
    {
        int k = 0;
        for (int v = 0; v < Nodes; v++) k = Math.Max(k, Neighbourhood(v, hops, out _).Count);
        return k;
    }

    /// <summary>
    /// One sample per node in <paramref name="nodes"/> (label = the node's label), of shape (K, 3S). Row i is local node i
    /// (row 0 the target, then its 1-hop ring, ..., padding rows of zeros up to K): columns [0, S) its features (zero
    /// beyond F), [S, 2S) the local indices of the nodes in its row of Â (ascending node order, self loop included), and
    /// [2S, 3S) their weights; unused slots hold index 0 and weight 0. Rows of the outermost ring carry features only:
    /// an L-layer GCN's output at the target reads exactly rows 0.. of the first L−1 rings' Â rows, so it equals the
    /// full-graph GCN's output at that node with <paramref name="hops"/> = L.
    /// </summary>
    public Dataset Samples(IReadOnlyList<int> nodes, int hops, string name, int? localNodes = null)
    {
        if (hops < 1) throw new ArgumentOutOfRangeException(nameof(hops), hops, "A graph sample needs at least one hop (one GCN layer).");
        int k = localNodes ?? LocalNodes(hops), s = BlockWidth, width = 3 * s, f = FeatureCount;
        var x = new float[nodes.Count * k * width];
        var labels = new int[nodes.Count];
        var local = new int[Nodes];
        Array.Fill(local, -1);
        for (int n = 0; n < nodes.Count; n++)
        {
            int v = nodes[n];
            var order = Neighbourhood(v, hops, out var ringStart);
            if (order.Count > k) throw new ArgumentException($"Graph {Name}: node {v}'s {hops}-hop neighbourhood has {order.Count} nodes, more than K = {k}.", nameof(localNodes));
            for (int i = 0; i < order.Count; i++) local[order[i]] = i;
            var block = x.AsSpan(n * k * width, k * width);
            for (int i = 0; i < order.Count; i++)
            {
                int u = order[i];
                var row = block.Slice(i * width, width);
                Features.AsSpan(u * f, f).CopyTo(row);
                if (i >= ringStart[hops]) continue;   // outermost ring: features only
                int slot = 0;
                bool selfDone = false;
                foreach (var w in Neighbours(u))
                {
                    if (!selfDone && w > u) { Put(row, s, slot++, i, NormalizedWeight(u, u)); selfDone = true; }
                    Put(row, s, slot++, local[w], NormalizedWeight(u, w));
                }
                if (!selfDone) Put(row, s, slot, i, NormalizedWeight(u, u));
            }
            foreach (var u in order) local[u] = -1;
            labels[n] = Labels[v];
        }
        return new Dataset(name, [k, width], x, labels, Classes);

        static void Put(Span<float> row, int s, int slot, int index, float weight)
        {
            row[s + slot] = index;
            row[2 * s + slot] = weight;
        }
    }

    /// <summary>Training and test samples for a transductive split: the labelled nodes and every other node.</summary>
    public (Dataset Train, Dataset Test) Split(IReadOnlyList<int> labelled, int hops)
    {
        var isTrain = new bool[Nodes];
        foreach (var v in labelled)
        {
            if ((uint)v >= (uint)Nodes) throw new ArgumentException($"Graph {Name}: labelled node {v} is outside 0..{Nodes - 1}.", nameof(labelled));
            isTrain[v] = true;
        }
        var train = labelled.Distinct().Order().ToArray();
        var test = Enumerable.Range(0, Nodes).Where(v => !isTrain[v]).ToArray();
        if (test.Length == 0) throw new ArgumentException($"Graph {Name}: every node is labelled; nothing is left to test on.", nameof(labelled));
        int k = LocalNodes(hops);
        return (Samples(train, hops, $"{Name}/train", k), Samples(test, hops, $"{Name}/test", k));
    }
}
