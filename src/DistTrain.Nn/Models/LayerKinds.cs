// The layer kinds a model spec may name: their fields (type, range, default) and how each maps a
// per-sample input shape to its output shape. Only parsing and shape inference live here; building
// the layers is ModelBuilder's job.
using System.Text.Json;
using static DistTrain.Nn.Models.ModelSpec;

namespace DistTrain.Nn.Models;

internal enum FieldKind { PositiveInt, NonNegativeInt, Probability, PositiveFloat, Float, Bool, Choice, Shape }

internal sealed record FieldDef(string Name, FieldKind Kind, bool Required = false, string[]? Choices = null);

internal sealed record LayerKind(string Type, FieldDef[] Fields, Func<LayerSpecDraft, int[]> Shape);

/// <summary>A layer being parsed: its fields, input shape and path, for the shape function.</summary>
internal sealed record LayerSpecDraft(string Path, int[] Input, Dictionary<string, JsonElement> Fields)
{
    public int Int(string f, int fallback) => Fields.TryGetValue(f, out var e) ? (int)e.GetDouble() : fallback;
    public bool Bool(string f, bool fallback) => Fields.TryGetValue(f, out var e) ? e.GetBoolean() : fallback;
    public ModelSpecException Error(string message) => new(Path, message);
    public string Shape => DistTrain.Tensors.Tensor.ShapeString(Input);
}

internal static class LayerKinds
{
    public static readonly string[] Activations = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"];
    public static readonly string[] Inits = ["default", "zeros", "normal", "uniform", "xavier", "glorot", "he", "kaiming"];

    private static readonly FieldDef[] WeightFields =
    [
        new("bias", FieldKind.Bool), new("init", FieldKind.Choice, Choices: Inits), new("init_scale", FieldKind.PositiveFloat),
        new("activation", FieldKind.Choice, Choices: Activations),
    ];

    private static readonly Dictionary<string, string> Aliases = new()
    {
        ["linear"] = "dense", ["fc"] = "dense", ["conv"] = "conv2d", ["maxpool"] = "maxpool2d", ["avgpool"] = "avgpool2d",
        ["leakyrelu"] = "leaky_relu", ["batchnorm"] = "batchnorm", ["bn"] = "batchnorm", ["rnn_tanh"] = "rnn", ["echo_state"] = "esn", ["reservoir"] = "esn", ["gaussian_sample"] = "reparameterize",
        ["convtranspose2d"] = "conv_transpose2d", ["deconv"] = "conv_transpose2d", ["conv_transpose"] = "conv_transpose2d",
    };

    private static readonly LayerKind[] All =
    [
        new("dense", [new("out", FieldKind.PositiveInt, true), new("in", FieldKind.PositiveInt), .. WeightFields], d =>
        {
            // (F) features, or a (T,F) sequence that it maps step by step (PyTorch's Linear on the last dimension).
            if (d.Input.Length is not (1 or 2))
                throw d.Error($"dense needs a flat input (features) but gets {d.Shape}; put {{\"type\":\"flatten\"}} before it.");
            int inF = d.Int("in", d.Input[^1]);
            if (inF != d.Input[^1]) throw d.Error($"dense \"in\" is {inF} but the previous layer gives {d.Input[^1]} features.");
            return d.Input.Length == 1 ? [d.Int("out", 0)] : [d.Input[0], d.Int("out", 0)];
        }),
        new("conv2d", [new("out", FieldKind.PositiveInt, true), new("kernel", FieldKind.PositiveInt, true), new("stride", FieldKind.PositiveInt),
            new("padding", FieldKind.NonNegativeInt), new("in", FieldKind.PositiveInt), .. WeightFields], d =>
        {
            var (c, h, w) = Chw(d, "conv2d");
            int inC = d.Int("in", c);
            if (inC != c) throw d.Error($"conv2d \"in\" is {inC} but the input has {c} channels.");
            int k = d.Int("kernel", 0), s = d.Int("stride", 1), p = d.Int("padding", 0);
            int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
            if (h + 2 * p < k || w + 2 * p < k) throw d.Error($"conv2d kernel {k} is larger than the padded input {d.Shape} (padding {p}).");
            return [d.Int("out", 0), oh, ow];
        }),
        new("conv_transpose2d", [new("out", FieldKind.PositiveInt, true), new("kernel", FieldKind.PositiveInt, true), new("stride", FieldKind.PositiveInt),
            new("padding", FieldKind.NonNegativeInt), new("output_padding", FieldKind.NonNegativeInt), new("in", FieldKind.PositiveInt), .. WeightFields], d =>
        {
            var (c, h, w) = Chw(d, "conv_transpose2d");
            int inC = d.Int("in", c);
            if (inC != c) throw d.Error($"conv_transpose2d \"in\" is {inC} but the input has {c} channels.");
            int k = d.Int("kernel", 0), s = d.Int("stride", 1), p = d.Int("padding", 0), op = d.Int("output_padding", 0);
            if (op >= s) throw d.Error($"conv_transpose2d \"output_padding\" {op} must be smaller than the stride {s}.");
            int oh = Layers.ConvTranspose2d.OutputSize(h, k, s, p, op), ow = Layers.ConvTranspose2d.OutputSize(w, k, s, p, op);
            if (oh <= 0 || ow <= 0) throw d.Error($"conv_transpose2d padding {p} leaves no output for the input {d.Shape} (kernel {k}, stride {s}).");
            return [d.Int("out", 0), oh, ow];
        }),
        new("maxpool2d", [new("kernel", FieldKind.PositiveInt, true), new("stride", FieldKind.PositiveInt)], d => Pool(d, "maxpool2d")),
        new("avgpool2d", [new("kernel", FieldKind.PositiveInt, true), new("stride", FieldKind.PositiveInt)], d => Pool(d, "avgpool2d")),
        new("flatten", [], d => [Product(d.Input)]),
        new("reshape", [new("shape", FieldKind.Shape, true)], d =>
        {
            var shape = ReadShape(d.Fields["shape"], Join(d.Path, "shape"));
            if (Product(shape) != Product(d.Input))
                throw d.Error($"reshape to {DistTrain.Tensors.Tensor.ShapeString(shape)} ({Product(shape)} values) does not fit the input {d.Shape} ({Product(d.Input)} values).");
            return shape;
        }),
        new("dropout", [new("p", FieldKind.Probability)], d => d.Input),
        new("relu", [], d => d.Input),
        new("leaky_relu", [new("slope", FieldKind.Float)], d => d.Input),
        new("sigmoid", [], d => d.Input),
        new("tanh", [], d => d.Input),
        new("gelu", [], d => d.Input),
        new("softmax", [], d => d.Input),
        new("rbm", [new("hidden", FieldKind.PositiveInt, true), new("k", FieldKind.PositiveInt)], d =>
            d.Input.Length == 1 ? d.Input : throw d.Error($"rbm needs flat visible units but gets {d.Shape}; put {{\"type\":\"flatten\"}} before it.")),
        new("reparameterize", [new("kl_weight", FieldKind.Float)], d =>
        {
            if (d.Input.Length != 1 || d.Input[0] % 2 != 0)
                throw d.Error($"reparameterize needs (2Z) input, μ and log σ² side by side (a dense layer with an even \"out\"), but gets {d.Shape}.");
            if (d.Fields.TryGetValue("kl_weight", out var kw) && kw.GetDouble() < 0)
                throw d.Error($"\"kl_weight\" must be ≥ 0 (1 = the ELBO), not {kw.GetDouble()}.");
            return [d.Input[0] / 2];
        }),
        new("esn", [new("units", FieldKind.PositiveInt, true), new("spectral_radius", FieldKind.PositiveFloat), new("leak", FieldKind.PositiveFloat),
            new("input_scale", FieldKind.PositiveFloat), new("density", FieldKind.PositiveFloat), new("include_input", FieldKind.Bool),
            new("washout", FieldKind.NonNegativeInt)], d =>
        {
            if (d.Input.Length != 2)
                throw d.Error($"esn needs a (T,F) sequence input (steps, features) but gets {d.Shape}.");
            foreach (var f in new[] { "leak", "density" })
                if (d.Fields.TryGetValue(f, out var v) && v.GetDouble() > 1) throw d.Error($"\"{f}\" must lie in (0, 1], not {v.GetDouble()}.");
            if (d.Int("washout", 0) >= d.Input[0]) throw d.Error($"\"washout\" {d.Int("washout", 0)} leaves none of the {d.Input[0]} steps.");
            return [d.Input[0], (d.Bool("include_input", true) ? d.Input[1] : 0) + d.Int("units", 0)];
        }),
        new("batchnorm", [new("eps", FieldKind.PositiveFloat), new("momentum", FieldKind.Probability)], d =>
            d.Input.Length is >= 1 and <= 3 ? d.Input : throw d.Error($"batchnorm needs (C), (C,L) or (C,H,W) input but gets {d.Shape}.")),
        new("batchnorm1d", [new("eps", FieldKind.PositiveFloat), new("momentum", FieldKind.Probability)], d =>
            d.Input.Length is 1 or 2 ? d.Input : throw d.Error($"batchnorm1d needs (C) or (C,L) input but gets {d.Shape}; use batchnorm2d for images.")),
        new("batchnorm2d", [new("eps", FieldKind.PositiveFloat), new("momentum", FieldKind.Probability)], d =>
        {
            Chw(d, "batchnorm2d");
            return d.Input;
        }),
        new("layernorm", [new("eps", FieldKind.PositiveFloat)], d => d.Input),
        new("rnn", [new("hidden", FieldKind.PositiveInt, true), new("return_sequences", FieldKind.Bool)], d => Recurrent(d, "rnn")),
        new("lstm", [new("hidden", FieldKind.PositiveInt, true), new("return_sequences", FieldKind.Bool)], d => Recurrent(d, "lstm")),
        new("gru", [new("hidden", FieldKind.PositiveInt, true), new("return_sequences", FieldKind.Bool)], d => Recurrent(d, "gru")),
        new("residual", [new("out", FieldKind.PositiveInt, true), new("stride", FieldKind.PositiveInt), new("batch_norm", FieldKind.Bool)], d =>
        {
            var (_, h, w) = Chw(d, "residual");
            int s = d.Int("stride", 1);
            return [d.Int("out", 0), (h - 1) / s + 1, (w - 1) / s + 1];
        }),
        .. SequenceLayerKinds.All,
        .. GraphLayerKinds.All,
        .. BlockKinds.All,
        .. GanKinds.All,
    ];

    private static readonly Dictionary<string, LayerKind> ByType = All.ToDictionary(k => k.Type);

    /// <summary>Each layer type's fields (besides "type" and "name"), which of them are required, and the aliases that
    /// name it: what docs/model-spec.schema.json must say (a test holds the two together).</summary>
    internal static IEnumerable<(string Type, string[] Fields, string[] Required, string[] Aliases)> Catalog() =>
        All.Select(k => (k.Type, k.Fields.Select(f => f.Name).ToArray(), k.Fields.Where(f => f.Required).Select(f => f.Name).ToArray(),
            Aliases.Where(a => a.Value == k.Type).Select(a => a.Key).ToArray()));

    /// <summary>Valid layer type names, for error messages and documentation.</summary>
    public static IEnumerable<string> TypeNames => All.Select(k => k.Type);

    public static LayerSpec Parse(JsonElement el, string path, int[] input, HashSet<string> names)
    {
        if (el.ValueKind != JsonValueKind.Object)
            throw new ModelSpecException(path, $"a layer is an object like {{\"type\":\"dense\",\"out\":10}}, not {Describe(el)}.");
        if (!el.TryGetProperty("type", out var typeEl))
            throw new ModelSpecException(path, $"missing \"type\"; valid: {string.Join(", ", TypeNames)}.");
        var raw = RequireString(typeEl, Join(path, "type")).Trim().ToLowerInvariant();
        var type = Aliases.GetValueOrDefault(raw, raw);
        if (!ByType.TryGetValue(type, out var kind))
            throw new ModelSpecException(Join(path, "type"), $"unknown layer \"{raw}\"; valid: {string.Join(", ", TypeNames)}.");

        var label = el.TryGetProperty("name", out var nameEl) && nameEl.ValueKind == JsonValueKind.String ? $"{type} layer \"{nameEl.GetString()}\"" : $"{type} layer";
        try { return ParseKind(el, path, input, names, kind, type); }
        catch (ModelSpecException e) when (e.Path.StartsWith(path, StringComparison.Ordinal) && !e.Detail.Contains(" (in the ", StringComparison.Ordinal))
        {
            // Name the layer beside its path: "layers[4].out: must be a positive integer, not 0 (in the dense layer "l2")."
            throw new ModelSpecException(e.Path, $"{e.Detail.TrimEnd('.')} (in the {label}).");
        }
    }

    private static LayerSpec ParseKind(JsonElement el, string path, int[] input, HashSet<string> names, LayerKind kind, string type)
    {
        string? name = null;
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        var allowed = kind.Fields.Select(f => f.Name).Append("type").Append("name").ToArray();
        CheckFields(el, path, allowed);
        foreach (var p in el.EnumerateObject())
        {
            if (p.Name == "type") continue;
            if (p.Name == "name")
            {
                name = RequireString(p.Value, Join(path, "name"));
                if (name.Length == 0 || name.Contains('.') || name.All(char.IsDigit))
                    throw new ModelSpecException(Join(path, "name"), $"\"{name}\" is not a valid layer name: use letters/digits/_ without dots, not a bare number.");
                if (!names.Add(name)) throw new ModelSpecException(Join(path, "name"), $"duplicate layer name \"{name}\".");
                continue;
            }
            var def = kind.Fields.First(f => f.Name == p.Name);
            CheckValue(def, p.Value, Join(path, p.Name));
            fields[p.Name] = p.Value.Clone();
        }
        foreach (var f in kind.Fields.Where(f => f.Required))
            if (!fields.ContainsKey(f.Name))
                throw new ModelSpecException(Join(path, f.Name), $"{type} needs \"{f.Name}\" ({Expect(f)}).");
        var output = kind.Shape(new LayerSpecDraft(path, input, fields));
        return new LayerSpec(type, name, path, fields, type == "block" ? BlockKinds.Parse(fields["nodes"], path, input).Nodes
            : type == "gan" ? GanKinds.Parts(fields, path, input) : [], input, output);
    }

    private static void CheckValue(FieldDef def, JsonElement v, string path)
    {
        bool ok = def.Kind switch
        {
            FieldKind.PositiveInt => IsInt(v) && v.GetDouble() > 0,
            FieldKind.NonNegativeInt => IsInt(v) && v.GetDouble() >= 0,
            FieldKind.Probability => v.ValueKind == JsonValueKind.Number && v.GetDouble() is >= 0 and < 1,
            FieldKind.PositiveFloat => v.ValueKind == JsonValueKind.Number && v.GetDouble() > 0,
            FieldKind.Float => v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()),
            FieldKind.Bool => v.ValueKind is JsonValueKind.True or JsonValueKind.False,
            FieldKind.Choice => v.ValueKind == JsonValueKind.String && def.Choices!.Contains(v.GetString()),
            FieldKind.Shape => v.ValueKind == JsonValueKind.Array,
            _ => false,
        };
        if (ok) return;
        if (def.Kind == FieldKind.Choice && v.ValueKind == JsonValueKind.String)
            throw new ModelSpecException(path, $"unknown {(def.Name == "activation" ? "activation" : def.Name)} \"{v.GetString()}\"; valid: {string.Join(", ", def.Choices!)}.");
        throw new ModelSpecException(path, $"must be {Expect(def)}, not {Describe(v)}.");
    }

    /// <summary>A JSON number with an integral value in int range (4 and 4.0 both count).</summary>
    internal static bool IsInt(JsonElement v) =>
        v.ValueKind == JsonValueKind.Number && v.GetDouble() is var d && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue;

    private static string Expect(FieldDef d) => d.Kind switch
    {
        FieldKind.PositiveInt => "a positive integer",
        FieldKind.NonNegativeInt => "a non-negative integer",
        FieldKind.Probability => "a number in [0, 1)",
        FieldKind.PositiveFloat => "a positive number",
        FieldKind.Float => "a number",
        FieldKind.Bool => "true or false",
        FieldKind.Choice => $"one of {string.Join(", ", d.Choices!)}",
        FieldKind.Shape => "an array of positive integers",
        _ => "valid",
    };

    private static (int C, int H, int W) Chw(LayerSpecDraft d, string type) =>
        d.Input.Length == 3 ? (d.Input[0], d.Input[1], d.Input[2])
        : throw d.Error($"{type} needs a (C,H,W) image input but gets {d.Shape}" +
                        (d.Input.Length == 2 ? $"; give \"input\" as [1,{d.Input[0]},{d.Input[1]}] or reshape first." : "."));

    private static int[] Pool(LayerSpecDraft d, string type)
    {
        var (c, h, w) = Chw(d, type);
        int k = d.Int("kernel", 0), s = d.Int("stride", k);
        if (k > h || k > w) throw d.Error($"{type} kernel {k} is larger than the input {d.Shape}.");
        return [c, (h - k) / s + 1, (w - k) / s + 1];
    }

    private static int[] Recurrent(LayerSpecDraft d, string type)
    {
        if (d.Input.Length != 2)
            throw d.Error($"{type} needs a (T,F) sequence input (steps, features) but gets {d.Shape}" +
                          (d.Input.Length == 3 && d.Input[0] == 1 ? $"; put {{\"type\":\"reshape\",\"shape\":[{d.Input[1]},{d.Input[2]}]}} before it." : "."));
        int hidden = d.Int("hidden", 0);
        return d.Bool("return_sequences", false) ? [d.Input[0], hidden] : [hidden];
    }

    private static int Product(int[] s)
    {
        int p = 1;
        foreach (var x in s) p *= x;
        return p;
    }
}
