// The `graph:NAME[:options]` datasets: a graph, its labelled nodes (the training samples) and every other node (the
// test samples), each node packed with its neighbourhood (Graph.Samples). Same text, same samples, on any node.
using System.Globalization;

namespace DistTrain.Data.Graphs;

public static class GraphDatasets
{
    public static readonly IReadOnlyList<string> Names = ["karate", "sbm"];
    public static readonly string[] Options = ["n", "classes", "degree-in", "degree-out", "features", "noise", "seed", "labels", "hops"];

    public const string Help =
        "graph:karate[:labels=L][:hops=H]   Zachary's karate club (34 members, 2 factions, one-hot features); labels=1 (default) labels the two leaders\n" +
        "  graph:sbm[:n=1000][:classes=4][:degree-in=4][:degree-out=2][:features=16][:noise=2.5][:seed=S][:labels=20][:hops=2]\n" +
        "                                              stochastic block model with noisy block-centre features; labels = labelled nodes per class";

    /// <summary>Checks the name and every option without building the graph; throws ArgumentException naming the problem.</summary>
    public static void Validate(string name, IReadOnlyDictionary<string, string> options) => Parse(name, options);

    /// <summary>The graph a spec names, and its labelled nodes.</summary>
    public static (Graph Graph, int[] Labelled, int Hops) Describe(string name, IReadOnlyDictionary<string, string> options)
    {
        var (sbm, perClass, seed, hops) = Parse(name, options);
        if (sbm is null)
        {
            var karate = KarateClub.Create();
            return (karate, perClass == 1 ? [KarateClub.Instructor, KarateClub.Administrator] : StochasticBlockModel.LabelledNodes(karate, perClass, seed), hops);
        }
        var g = StochasticBlockModel.Create(sbm);
        return (g, StochasticBlockModel.LabelledNodes(g, perClass, seed), hops);
    }

    /// <summary>SBM options (null for the karate club), labelled nodes per class, seed and hops.</summary>
    static (SbmOptions? Sbm, int PerClass, int Seed, int Hops) Parse(string name, IReadOnlyDictionary<string, string> options)
    {
        foreach (var key in options.Keys)
            if (!Options.Contains(key)) throw new ArgumentException($"graph datasets take no option '{key}' (valid: {string.Join(", ", Options)})");
        int seed = Int(options, "seed", 0), hops = Int(options, "hops", 2);
        if (hops < 1) throw new ArgumentException($"option hops must be ≥ 1 (one per GCN layer), not {hops}");
        switch (name.ToLowerInvariant())
        {
            case "karate":
            {
                foreach (var key in options.Keys)
                    if (key is not ("labels" or "hops" or "seed")) throw new ArgumentException($"graph:karate takes only labels, hops and seed, not '{key}'");
                int per = Int(options, "labels", 1);
                if (per is < 1 or > 16) throw new ArgumentException($"option labels must lie in 1..16 for the karate club (labelled members per faction), not {per}");
                return (null, per, seed, hops);
            }
            case "sbm":
            {
                var o = new SbmOptions(Int(options, "n", 1000), Int(options, "classes", 4), Double(options, "degree-in", 4), Double(options, "degree-out", 2),
                    Int(options, "features", 16), Double(options, "noise", 2.5), seed);
                o.Validate();
                int per = Int(options, "labels", 20);
                if (per < 1 || per * o.Classes >= o.Nodes)
                    throw new ArgumentException($"option labels must be ≥ 1 and leave unlabelled nodes to test on ({o.Classes} classes × {per} ≥ n = {o.Nodes})");
                return (o, per, seed, hops);
            }
            default:
                throw new ArgumentException($"names unknown graph '{name}' (valid: {string.Join(", ", Names)})");
        }
    }

    /// <summary>Training samples (the labelled nodes) and test samples (all other nodes).</summary>
    public static (Dataset Train, Dataset Test) Load(string name, IReadOnlyDictionary<string, string> options)
    {
        var (g, labelled, hops) = Describe(name, options);
        return g.Split(labelled, hops);
    }

    static int Int(IReadOnlyDictionary<string, string> o, string key, int fallback) =>
        !o.TryGetValue(key, out var v) ? fallback
        : int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i
        : throw new ArgumentException($"option {key}='{v}' is not an integer");

    static double Double(IReadOnlyDictionary<string, string> o, string key, double fallback) =>
        !o.TryGetValue(key, out var v) ? fallback
        : double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d
        : throw new ArgumentException($"option {key}='{v}' is not a number");
}
