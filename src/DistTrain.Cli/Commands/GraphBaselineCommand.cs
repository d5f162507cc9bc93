// `disttrain graph baseline --dataset graph:NAME[:options]`: what a node classifier must beat on a graph dataset —
// label propagation (the graph alone) and nearest class centroid of the labelled nodes' features (the features alone),
// scored on the same unlabelled nodes `disttrain train` tests on.
using System.CommandLine;
using DistTrain.Data;
using DistTrain.Data.Graphs;
using DistTrain.Data.Sources;

namespace DistTrain.Cli.Commands;

public sealed class GraphBaselineCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var dataset = new Option<string>("--dataset") { Description = "graph:karate | graph:sbm[:options] (see `disttrain train --help`)", DefaultValueFactory = _ => "graph:karate" };
        var baseline = new Command("baseline", "Score label propagation and a features-only nearest-centroid classifier on a graph dataset's unlabelled nodes.") { dataset };
        baseline.SetAction(parse => Run(parse.GetValue(dataset)!));
        return new Command("graph", "Graph datasets for node classification.") { baseline };
    }

    static int Run(string text)
    {
        try
        {
            var spec = DatasetSpec.Parse(text);
            if (spec.Kind != "graph") throw new ArgumentException($"--dataset {text} is not a graph dataset; give graph:karate or graph:sbm[:options].");
            var (g, labelled, _) = GraphDatasets.Describe(spec.Target!, spec.Options);
            int within = 0;
            for (int v = 0; v < g.Nodes; v++)
                foreach (var u in g.Neighbours(v)) if (g.Labels[u] == g.Labels[v]) within++;
            Console.WriteLine($"dataset {spec}: {g.Nodes} nodes, {g.EdgeCount} edges, {g.FeatureCount} features, {g.Classes} classes; " +
                              $"{(double)within / Math.Max(1, 2 * g.EdgeCount):P1} of edge ends join nodes of one class; {labelled.Length} labelled nodes");
            Console.WriteLine($"  label propagation (graph only):      {LabelPropagation.Accuracy(g, labelled):P2} of {g.Nodes - labelled.Length} unlabelled nodes");
            Console.WriteLine($"  nearest class centroid (features only): {NearestCentroid(g, labelled):P2}");
            return 0;
        }
        catch (Exception e) when (e is DataException or ArgumentException)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
    }

    /// <summary>Each unlabelled node takes the class whose labelled nodes' mean feature vector is nearest (Euclidean).</summary>
    static double NearestCentroid(Graph g, int[] labelled)
    {
        int f = g.FeatureCount, c = g.Classes;
        var centre = new double[c * f];
        var count = new int[c];
        foreach (var v in labelled)
        {
            count[g.Labels[v]]++;
            for (int j = 0; j < f; j++) centre[g.Labels[v] * f + j] += g.Features[v * f + j];
        }
        for (int k = 0; k < c; k++) for (int j = 0; j < f; j++) centre[k * f + j] /= Math.Max(1, count[k]);
        var isLabelled = new HashSet<int>(labelled);
        int right = 0, total = 0;
        for (int v = 0; v < g.Nodes; v++)
        {
            if (isLabelled.Contains(v)) continue;
            int best = 0; double bestD = double.MaxValue;
            for (int k = 0; k < c; k++)
            {
                if (count[k] == 0) continue;
                double d = 0;
                for (int j = 0; j < f; j++) d += Math.Pow(g.Features[v * f + j] - centre[k * f + j], 2);
                if (d < bestD) { bestD = d; best = k; }
            }
            total++;
            if (best == g.Labels[v]) right++;
        }
        return (double)right / total;
    }
}
