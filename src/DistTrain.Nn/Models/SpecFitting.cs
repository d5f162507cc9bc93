// Fits a model spec to a dataset: a preset written for Fashion-MNIST takes the dataset's sample shape and
// class count (the input, a leading row-by-row reshape, a global average pool, the output layer's width),
// and any spec can take a fitted input standardization. Edits the spec's JSON and parses it again, so the
// result is checked like a hand-written spec and unchanged specs keep their hash.
using System.Text.Json.Nodes;
using DistTrain.Tensors;

namespace DistTrain.Nn.Models;

public static class SpecFitting
{
    /// <summary>
    /// The preset <paramref name="spec"/> refitted to samples of <paramref name="sampleShape"/> and, for a
    /// classifier, <paramref name="classes"/> outputs. Data with as many values per sample as the spec's input
    /// keeps the input shape (a CSV of 784 pixels still feeds (1,28,28)). Returns <paramref name="spec"/> itself
    /// when nothing changes; throws ModelSpecException naming the layer that cannot take the data.
    /// </summary>
    public static ModelSpec FitData(this ModelSpec spec, int[] sampleShape, int classes)
    {
        ArgumentNullException.ThrowIfNull(spec);
        int oldLength = Product(spec.Input), newLength = Product(sampleShape);
        var input = newLength == oldLength ? spec.Input : sampleShape;
        var root = JsonNode.Parse(spec.CanonicalJson)!.AsObject();
        var layers = root["layers"]!.AsArray();
        bool changed = false;
        if (!input.AsSpan().SequenceEqual(spec.Input))
        {
            root["input"] = Shape(input);
            changed = true;
            // A first reshape that reads an image row by row (recurrent presets) reads the new data's rows.
            if (spec.Layers[0].Type == "reshape" && spec.Layers[0].OutputShape.Length == 2)
                layers[0]!["shape"] = Shape(input switch
                {
                    [1, var h, var w] => [h, w],
                    [var t, var f] => [t, f],
                    [var f] => [f, 1],
                    _ => throw new ModelSpecException("layers[0].shape", $"a row-by-row model cannot read samples of shape {Tensor.ShapeString(input)}; give (1,H,W), (T,F) or (F) data."),
                });
        }
        // The output layer: a classifier's last dense layer gets one output per class; an autoencoder's
        // (an "mse" spec whose last dense layer rebuilds the input) one per input value.
        int last = Math.Max(LastIndex(spec, "dense"), LastIndex(spec, "gcn"));
        if (last >= 0)
        {
            int outputs = spec.Layers[last].Int("out", 0);
            int want = spec.Loss == "cross_entropy" ? classes : spec.Loss == "mse" && outputs == oldLength ? newLength : outputs;
            if (want != outputs) { layers[last]!["out"] = want; changed = true; }
        }
        if (!changed) return spec;
        // A global average pool (kernel = the whole feature map) stays global: its kernel follows the new map size.
        for (int i = 0; i < spec.Layers.Count; i++)
        {
            var l = spec.Layers[i];
            if (l.Type != "avgpool2d" || l.InputShape.Length != 3 || l.Int("kernel", 0) != l.InputShape[1] || l.InputShape[1] != l.InputShape[2]) continue;
            var map = ShapeBefore(root, i);
            if (map.Length != 3 || map[1] != map[2])
                throw new ModelSpecException($"layers[{i}]", $"the global average pool needs a square feature map, but data of shape {Tensor.ShapeString(input)} gives {Tensor.ShapeString(map)}.");
            layers[i]!["kernel"] = map[1];
        }
        return ModelSpec.Parse(root.ToJsonString());
    }

    /// <summary>The spec with a "standardize" step (x − mean) / std before its first layer (replacing any it had).</summary>
    public static ModelSpec WithStandardize(this ModelSpec spec, float[] mean, float[] std)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var root = JsonNode.Parse(spec.CanonicalJson)!.AsObject();
        // Floats written in their shortest round-trip form, so parsing gives back the same floats.
        root["standardize"] = new JsonObject
        {
            ["mean"] = new JsonArray(mean.Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
            ["std"] = new JsonArray(std.Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
        };
        return ModelSpec.Parse(root.ToJsonString());
    }

    /// <summary>The per-sample shape entering layer <paramref name="index"/> of the edited spec.</summary>
    private static int[] ShapeBefore(JsonObject root, int index)
    {
        var copy = JsonNode.Parse(root.ToJsonString())!.AsObject();
        var layers = copy["layers"]!.AsArray();
        while (layers.Count > index) layers.RemoveAt(layers.Count - 1);
        if (layers.Count == 0) return copy["input"]!.AsArray().Select(n => (int)n!).ToArray();
        copy.Remove("standardize");
        return ModelSpec.Parse(copy.ToJsonString()).Output;
    }

    private static int LastIndex(ModelSpec spec, string type)
    {
        for (int i = spec.Layers.Count - 1; i >= 0; i--)
            if (spec.Layers[i].Type == type) return i;
        return -1;
    }

    private static JsonArray Shape(int[] shape) => new(shape.Select(d => (JsonNode)JsonValue.Create(d)).ToArray());

    private static int Product(int[] shape) => shape.Aggregate(1, (a, b) => a * b);
}
