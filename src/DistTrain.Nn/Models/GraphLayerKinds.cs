// Layer kinds for graph networks (a GCN over packed graph samples from a graph:... dataset): their spec fields, shape
// rule and builder, kept apart from LayerKinds/ModelBuilder, which each list them with one line.
using DistTrain.Nn.Layers;

namespace DistTrain.Nn.Models;

internal static class GraphLayerKinds
{
    public static readonly LayerKind[] All =
    [
        new("gcn", [new("out", FieldKind.PositiveInt, true), new("hidden", FieldKind.PositiveInt), new("dropout", FieldKind.Probability)], d =>
        {
            if (d.Input.Length != 2 || d.Input[1] % 3 != 0)
                throw d.Error($"gcn needs packed graph samples (K, 3S) — per local node S features, S neighbour indices and S weights of Â — " +
                              $"but gets {d.Shape}; train it on a graph:karate or graph:sbm dataset.");
            return [d.Int("out", 0)];
        }),
    ];

    /// <summary>The layer for a spec of one of these kinds, else null.</summary>
    public static Layer? Create(LayerSpec s) => s.Type switch
    {
        "gcn" => new Gcn(s.InputShape[1] / 3, s.Int("hidden", 16), s.Int("out", 0), s.Float("dropout", 0.5f)),
        _ => null,
    };
}
