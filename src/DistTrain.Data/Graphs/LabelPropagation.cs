// Label propagation (Zhu and Ghahramani 2002; the harmonic solution of Zhu, Ghahramani and Lafferty 2003): the baseline
// that uses the graph alone. Every unlabelled node repeatedly takes the average of its neighbours' class distributions
// while labelled nodes stay clamped to their one-hot labels; a node then predicts its largest class. In double, nodes
// and neighbours in ascending order, so the result is the same everywhere.
namespace DistTrain.Data.Graphs;

public static class LabelPropagation
{
    /// <summary>Predicted class of every node (labelled nodes keep their label; a node no label reaches predicts -1).</summary>
    public static int[] Predict(Graph g, IReadOnlyCollection<int> labelled, int maxIterations = 1000, double tolerance = 1e-9)
    {
        int n = g.Nodes, c = g.Classes;
        var clamped = new bool[n];
        foreach (var v in labelled) clamped[v] = true;
        var f = new double[n * c];
        var next = new double[n * c];
        foreach (var v in labelled) f[v * c + g.Labels[v]] = 1;
        for (int it = 0; it < maxIterations; it++)
        {
            double change = 0;
            for (int v = 0; v < n; v++)
            {
                var row = next.AsSpan(v * c, c);
                if (clamped[v]) { f.AsSpan(v * c, c).CopyTo(row); continue; }
                row.Clear();
                var nb = g.Neighbours(v);
                foreach (var u in nb)
                    for (int k = 0; k < c; k++) row[k] += f[u * c + k];
                if (nb.Length > 0)
                    for (int k = 0; k < c; k++) row[k] /= nb.Length;
                for (int k = 0; k < c; k++) change = Math.Max(change, Math.Abs(row[k] - f[v * c + k]));
            }
            (f, next) = (next, f);
            if (change < tolerance) break;
        }
        var pred = new int[n];
        for (int v = 0; v < n; v++)
        {
            int best = -1;
            double bestValue = 0;
            for (int k = 0; k < c; k++)
                if (f[v * c + k] > bestValue) { bestValue = f[v * c + k]; best = k; }
            pred[v] = best;
        }
        return pred;
    }

    /// <summary>Share of the unlabelled nodes whose prediction is their label.</summary>
    public static double Accuracy(Graph g, IReadOnlyCollection<int> labelled)
    {
        var pred = Predict(g, labelled);
        var isLabelled = new HashSet<int>(labelled);
        int right = 0, total = 0;
        for (int v = 0; v < g.Nodes; v++)
        {
            if (isLabelled.Contains(v)) continue;
            total++;
            if (pred[v] == g.Labels[v]) right++;
        }
        return total == 0 ? double.NaN : (double)right / total;
    }
}
