// The `block` layer kind: named nodes wired by "inputs" (a model graph inside one layer), parsed into child LayerSpecs
// in a fixed topological order, and built into a Layers.Block. A node is any layer kind (one input) or a merge —
// `add` or `concat` (two or more inputs); "inputs" defaults to the node before it ("input", the block's input, for the
// first); the last node is the block's output. A reference to a missing node, a cycle, or a node whose output reaches
// nothing is refused with the node's name.
using System.Text.Json;
using System.Text.Json.Nodes;
using DistTrain.Nn.Layers;
using static DistTrain.Nn.Models.ModelSpec;

namespace DistTrain.Nn.Models;

internal static class BlockKinds
{
    public const string InputName = "input";
    public static readonly string[] Merges = ["add", "concat"];

    public static readonly LayerKind[] All =
    [
        new("block", [new("nodes", FieldKind.Shape, true)], d => Parse(d.Fields["nodes"], d.Path, d.Input).Output),
        new("zero_pad2d", [new("padding", FieldKind.NonNegativeInt, true)], d =>
        {
            if (d.Input.Length != 3) throw d.Error($"zero_pad2d needs a (C,H,W) image input but gets {d.Shape}.");
            int p = d.Int("padding", 0);
            return [d.Input[0], d.Input[1] + 2 * p, d.Input[2] + 2 * p];
        }),
    ];

    /// <summary>The nodes of a block spec as child LayerSpecs in topological order (each with its resolved "inputs"), and the output shape.</summary>
    public static (List<LayerSpec> Nodes, int[] Output) Parse(JsonElement nodes, string path, int[] input, string field = "nodes")
    {
        var np = Join(path, field);
        if (nodes.ValueKind != JsonValueKind.Array || nodes.GetArrayLength() == 0)
            throw new ModelSpecException(np, "must be a non-empty array of named layers, e.g. [{\"name\":\"b1\",\"type\":\"conv2d\",\"out\":16,\"kernel\":1}].");
        var els = nodes.EnumerateArray().ToArray();
        var names = new string[els.Length];
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < els.Length; i++)
        {
            var p = $"{np}[{i}]";
            if (els[i].ValueKind != JsonValueKind.Object)
                throw new ModelSpecException(p, $"a node is an object with \"name\", \"type\" and optional \"inputs\", not {Describe(els[i])}.");
            if (!els[i].TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String)
                throw new ModelSpecException(Join(p, "name"), "every node of a block needs a \"name\" (other nodes name it in their \"inputs\").");
            var name = n.GetString()!;
            if (name == InputName) throw new ModelSpecException(Join(p, "name"), $"\"{InputName}\" names the block's input; give the node another name.");
            if (!index.TryAdd(name, i)) throw new ModelSpecException(Join(p, "name"), $"duplicate node name \"{name}\" in this block.");
            names[i] = name;
        }

        // Inputs: names of earlier or later nodes, or "input"; -1 = the block's input.
        var inputs = new int[els.Length][];
        var merge = new bool[els.Length];
        for (int i = 0; i < els.Length; i++)
        {
            var p = $"{np}[{i}]";
            var type = els[i].TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()!.Trim().ToLowerInvariant() : "";
            merge[i] = Merges.Contains(type);
            if (!els[i].TryGetProperty("inputs", out var ins))
            {
                if (merge[i]) throw new ModelSpecException(Join(p, "inputs"), $"{type} node \"{names[i]}\" needs \"inputs\": the names of the nodes it joins.");
                inputs[i] = [i - 1];
                continue;
            }
            if (ins.ValueKind != JsonValueKind.Array || ins.GetArrayLength() == 0 || ins.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                throw new ModelSpecException(Join(p, "inputs"), $"must be a non-empty array of node names (or \"{InputName}\"), not {Describe(ins)}.");
            var list = new List<int>();
            int k = 0;
            foreach (var e in ins.EnumerateArray())
            {
                var s = e.GetString()!;
                if (s == InputName) list.Add(-1);
                else if (index.TryGetValue(s, out var j)) list.Add(j);
                else throw new ModelSpecException($"{Join(p, "inputs")}[{k}]",
                    $"\"{s}\" names no node of this block (node \"{names[i]}\"); valid: {InputName}, {string.Join(", ", names.Where(x => x != names[i]))}.");
                if (list[^1] == i) throw new ModelSpecException($"{Join(p, "inputs")}[{k}]", $"node \"{names[i]}\" reads its own output; that is a cycle.");
                k++;
            }
            if (merge[i] ? list.Count < 2 : list.Count != 1)
                throw new ModelSpecException(Join(p, "inputs"), merge[i] ? $"{type} node \"{names[i]}\" joins at least two inputs, not {list.Count}."
                    : $"node \"{names[i]}\" is a {type} layer and reads one input, not {list.Count}; join them first with an add or concat node.");
            inputs[i] = list.ToArray();
        }

        var order = TopologicalOrder(inputs, names, np);
        // Every node must reach the output (the last node): a dead branch would train nothing and hide a wiring mistake.
        var used = new bool[els.Length];
        used[^1] = true;
        for (int o = order.Length - 1; o >= 0; o--)
            if (used[order[o]]) foreach (var j in inputs[order[o]]) if (j >= 0) used[j] = true;
        for (int i = 0; i < els.Length; i++)
            if (!used[i]) throw new ModelSpecException($"{np}[{i}]", $"node \"{names[i]}\"'s output reaches nothing: the last node (\"{names[^1]}\") is the block's output; wire \"{names[i]}\" into it or remove it.");

        var shapes = new int[els.Length][];
        var specs = new List<LayerSpec>();
        var layerNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in order)
        {
            var p = $"{np}[{i}]";
            var inShapes = inputs[i].Select(j => j < 0 ? input : shapes[j]).ToArray();
            var resolved = JsonSerializer.SerializeToElement(inputs[i].Select(j => j < 0 ? InputName : names[j]).ToArray());
            if (merge[i])
            {
                var type = els[i].GetProperty("type").GetString()!.Trim().ToLowerInvariant();
                CheckFields(els[i], p, ["type", "name", "inputs"]);
                shapes[i] = type == "add" ? AddShape(inShapes, p, names[i]) : ConcatShape(inShapes, p, names[i]);
                specs.Add(new LayerSpec(type, names[i], p, new Dictionary<string, JsonElement> { ["inputs"] = resolved }, [], inShapes[0], shapes[i]));
                continue;
            }
            // The node without "inputs" is an ordinary layer spec; its name is local to the block.
            var obj = JsonNode.Parse(els[i].GetRawText())!.AsObject();
            obj.Remove("inputs");
            using var doc = JsonDocument.Parse(obj.ToJsonString());
            var layer = LayerKinds.Parse(doc.RootElement, p, inShapes[0], layerNames);
            var fields = new Dictionary<string, JsonElement>(layer.Fields, StringComparer.Ordinal) { ["inputs"] = resolved };
            shapes[i] = layer.OutputShape;
            specs.Add(new LayerSpec(layer.Type, layer.Name, p, fields, layer.Children, layer.InputShape, layer.OutputShape));
        }
        return (specs, shapes[^1]);
    }

    /// <summary>Kahn's algorithm, taking the lowest-numbered ready node first: the same order for the same spec.</summary>
    private static int[] TopologicalOrder(int[][] inputs, string[] names, string path)
    {
        int n = inputs.Length;
        var pending = new int[n];
        var readers = new List<int>[n];
        for (int i = 0; i < n; i++) readers[i] = [];
        for (int i = 0; i < n; i++)
            foreach (var j in inputs[i].Distinct())
                if (j >= 0) { pending[i]++; readers[j].Add(i); }
        var ready = new SortedSet<int>(Enumerable.Range(0, n).Where(i => pending[i] == 0));
        var order = new List<int>();
        while (ready.Count > 0)
        {
            int i = ready.Min;
            ready.Remove(i);
            order.Add(i);
            foreach (var r in readers[i])
                if (--pending[r] == 0) ready.Add(r);
        }
        if (order.Count < n)
        {
            var stuck = Enumerable.Range(0, n).Where(i => pending[i] > 0).Select(i => $"\"{names[i]}\"");
            throw new ModelSpecException(path, $"the inputs form a cycle through nodes {string.Join(", ", stuck)}; a block's nodes must not read their own outputs, directly or through others.");
        }
        return order.ToArray();
    }

    private static int[] AddShape(int[][] shapes, string path, string name)
    {
        foreach (var s in shapes)
            if (!s.AsSpan().SequenceEqual(shapes[0]))
                throw new ModelSpecException(path, $"add node \"{name}\" joins shapes {string.Join(" and ", shapes.Select(x => DistTrain.Tensors.Tensor.ShapeString(x)))}; they must be equal.");
        return shapes[0];
    }

    private static int[] ConcatShape(int[][] shapes, string path, string name)
    {
        foreach (var s in shapes)
            if (s.Length != shapes[0].Length || !s.AsSpan(1).SequenceEqual(shapes[0].AsSpan(1)))
                throw new ModelSpecException(path, $"concat node \"{name}\" joins shapes {string.Join(" and ", shapes.Select(x => DistTrain.Tensors.Tensor.ShapeString(x)))}; " +
                                                   "all dimensions but the first (channels) must be equal.");
        var r = (int[])shapes[0].Clone();
        r[0] = shapes.Sum(s => s[0]);
        return r;
    }

    /// <summary>The Block for a block spec: its nodes in the spec's topological order; a dense/conv node's "activation"
    /// becomes a node "&lt;name&gt;_act" right after it, which the node's readers then read.</summary>
    public static Block Build(LayerSpec s, Func<LayerSpec, Layer> create, Func<string, Layer> activation)
    {
        var nodes = new List<BlockNode>();
        var at = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in s.Children)
        {
            var ins = c.Fields["inputs"].EnumerateArray().Select(e => e.GetString() == InputName ? -1 : at[e.GetString()!]).ToArray();
            var merge = c.Type switch { "add" => BlockMerge.Add, "concat" => BlockMerge.Concat, _ => BlockMerge.None };
            nodes.Add(new BlockNode(c.Name!, merge == BlockMerge.None ? create(c) : null, merge, ins));
            at[c.Name!] = nodes.Count - 1;
            if (c.String("activation") is { } act)
            {
                var actName = c.Name + "_act";
                if (s.Children.Any(o => o.Name == actName))
                    throw new ModelSpecException(c.Path, $"node \"{c.Name}\"'s activation is named \"{actName}\", which another node of the block already uses; rename that node.");
                nodes.Add(new BlockNode(actName, activation(act), BlockMerge.None, [nodes.Count - 1]));
                at[c.Name!] = nodes.Count - 1;
            }
        }
        return new Block(nodes, nodes.Count - 1);
    }
}
