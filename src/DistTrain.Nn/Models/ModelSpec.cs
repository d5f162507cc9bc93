// A model described in JSON that a user writes by hand: input shape, loss, and a list of layers.
// Parsing checks every field and infers every shape, so a mistake is reported by its JSON path
// (`layers[3].type: unknown layer "convv"`) before any layer is built. The spec hash (SHA-256 of the
// canonical JSON) lets cluster nodes check that they run the same model. Layer kinds: LayerKinds.cs.
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace DistTrain.Nn.Models;

/// <summary>Bad model spec: the message starts with the JSON path of the offending field.</summary>
public sealed class ModelSpecException(string path, string message)
    : Exception(path.Length == 0 ? message : $"{path}: {message}")
{
    /// <summary>JSON path of the offending field (`layers[3].out`), or "" for the document.</summary>
    public string Path { get; } = path;
    /// <summary>The message without the path in front.</summary>
    public string Detail { get; } = message;
}

/// <summary>One layer of a spec: its kind, optional name, its fields, and the shapes it maps.</summary>
public sealed class LayerSpec
{
    internal LayerSpec(string type, string? name, string path, IReadOnlyDictionary<string, JsonElement> fields,
        IReadOnlyList<LayerSpec> children, int[] inputShape, int[] outputShape)
    {
        Type = type; Name = name; Path = path; Fields = fields; Children = children;
        InputShape = inputShape; OutputShape = outputShape;
    }

    /// <summary>Canonical layer type (`dense`, `conv2d`, `lstm`...).</summary>
    public string Type { get; }
    /// <summary>User-given name (the state_dict prefix), or null for the index.</summary>
    public string? Name { get; }
    /// <summary>JSON path of this layer in the spec (`layers[2]`).</summary>
    public string Path { get; }
    public IReadOnlyDictionary<string, JsonElement> Fields { get; }
    /// <summary>Nested layers (the body of a `residual` block given as a list), else empty.</summary>
    public IReadOnlyList<LayerSpec> Children { get; }
    /// <summary>Per-sample shapes (without the batch dimension).</summary>
    public int[] InputShape { get; }
    public int[] OutputShape { get; }

    public int Int(string field, int fallback) => Fields.TryGetValue(field, out var e) ? (int)e.GetDouble() : fallback;
    public float Float(string field, float fallback) => Fields.TryGetValue(field, out var e) ? (float)e.GetDouble() : fallback;
    public bool Bool(string field, bool fallback) => Fields.TryGetValue(field, out var e) ? e.GetBoolean() : fallback;
    public string? String(string field) => Fields.TryGetValue(field, out var e) ? e.GetString() : null;

    public override string ToString() => $"{Path} {Type}{(Name is null ? "" : $" \"{Name}\"")}";
}

public sealed class ModelSpec
{
    private static readonly string[] TopFields = ["name", "input", "loss", "label_smoothing", "reduction", "target", "layers", "description", "seed_init", "standardize"];
    /// <summary>Loss names a spec may use.</summary>
    public static readonly string[] LossNames = ["cross_entropy", "mse", "bce_with_logits", "perceptron", "none"];

    private ModelSpec(string name, int[] input, string loss, float labelSmoothing, IReadOnlyList<LayerSpec> layers, string canonical,
        (float[] Mean, float[] Std)? standardize, string reduction = "mean", string target = "labels")
    {
        Name = name; Input = input; Loss = loss; LabelSmoothing = labelSmoothing; Layers = layers; CanonicalJson = canonical;
        StandardizeMean = standardize?.Mean; StandardizeStd = standardize?.Std;
        Reduction = reduction; Target = loss == "mse" ? "values" : target;
        Hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
    }

    public string Name { get; }
    /// <summary>Per-sample input shape, e.g. (1,28,28).</summary>
    public int[] Input { get; }
    /// <summary>`cross_entropy`, `mse`, `bce_with_logits`, `perceptron` or `none` (only the layers' added terms: an RBM).</summary>
    public string Loss { get; }
    /// <summary>`label_smoothing` of a cross_entropy loss (PyTorch's meaning), 0 when absent.</summary>
    public float LabelSmoothing { get; }
    /// <summary>How a sample's elements combine into its loss: `mean` (default) or `sum` (mse, bce_with_logits).</summary>
    public string Reduction { get; }
    /// <summary>What the loss compares the output with: `labels` (class labels) or `values` (the dataset's target values,
    /// or the input itself when it has none). mse always uses values; bce_with_logits either (default labels).</summary>
    public string Target { get; }
    public IReadOnlyList<LayerSpec> Layers { get; }
    /// <summary>`standardize.mean`: per-feature means (or one global mean) subtracted from every input before the
    /// first layer, fitted on the training split; null when the spec has no "standardize".</summary>
    public float[]? StandardizeMean { get; }
    /// <summary>`standardize.std`: the matching standard deviations the centred inputs are divided by.</summary>
    public float[]? StandardizeStd { get; }
    /// <summary>Per-sample output shape of the last layer.</summary>
    public int[] Output => Layers.Count == 0 ? Input : Layers[^1].OutputShape;
    /// <summary>The spec as JSON with sorted keys and no whitespace: what the hash is taken of, and what checkpoints store.</summary>
    public string CanonicalJson { get; }
    /// <summary>Lower-case hex SHA-256 of <see cref="CanonicalJson"/>.</summary>
    public string Hash { get; }

    /// <summary>Reads and parses a spec file; errors name the file and the JSON path.</summary>
    public static ModelSpec Load(string file)
    {
        if (!File.Exists(file)) throw new ModelSpecException("", $"model spec file {file} does not exist.");
        try { return Parse(File.ReadAllText(file)); }
        catch (ModelSpecException e) { throw new ModelSpecException(e.Path, $"{e.Message.Substring(e.Path.Length == 0 ? 0 : e.Path.Length + 2)} (in {file})"); }
    }

    public static ModelSpec Parse(string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new ModelSpecException("", $"not valid JSON: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ModelSpecException("", "a model spec is a JSON object with \"input\", \"loss\" and \"layers\".");
            CheckFields(root, "", TopFields);
            string name = root.TryGetProperty("name", out var n) ? RequireString(n, "name") : "model";
            if (!root.TryGetProperty("input", out var inputEl)) throw new ModelSpecException("input", "missing; give the per-sample input shape, e.g. [1,28,28].");
            var input = ReadShape(inputEl, "input");
            string loss = root.TryGetProperty("loss", out var l) ? RequireString(l, "loss") : "cross_entropy";
            if (!LossNames.Contains(loss)) throw new ModelSpecException("loss", $"unknown loss \"{loss}\"; valid: {string.Join(", ", LossNames)}.");
            float smoothing = 0f;
            if (root.TryGetProperty("label_smoothing", out var ls))
            {
                if (ls.ValueKind != JsonValueKind.Number || !(ls.GetDouble() is >= 0 and < 1))
                    throw new ModelSpecException("label_smoothing", $"must be a number in [0, 1) (0.1 is usual), not {Describe(ls)}.");
                if (loss != "cross_entropy")
                    throw new ModelSpecException("label_smoothing", $"applies to the cross_entropy loss only, not \"{loss}\"; remove the field.");
                smoothing = (float)ls.GetDouble();
            }
            string reduction = "mean", target = "labels";
            if (root.TryGetProperty("reduction", out var red))
            {
                reduction = RequireString(red, "reduction");
                if (reduction is not ("mean" or "sum"))
                    throw new ModelSpecException("reduction", $"must be \"mean\" or \"sum\" (how a sample's elements combine), not \"{reduction}\".");
                if (reduction == "sum" && loss is not ("mse" or "bce_with_logits"))
                    throw new ModelSpecException("reduction", $"\"sum\" applies to the mse and bce_with_logits losses, not \"{loss}\"; remove the field.");
            }
            if (root.TryGetProperty("target", out var tg))
            {
                target = RequireString(tg, "target");
                if (target is not ("labels" or "values"))
                    throw new ModelSpecException("target", $"must be \"labels\" or \"values\" (the dataset's target values, or the input itself), not \"{target}\".");
                if (loss != "bce_with_logits" && target != (loss == "mse" ? "values" : "labels"))
                    throw new ModelSpecException("target", $"the {loss} loss always compares with {(loss == "mse" ? "values" : "labels")}; remove the field.");
            }
            if (!root.TryGetProperty("layers", out var layersEl) || layersEl.ValueKind != JsonValueKind.Array || layersEl.GetArrayLength() == 0)
                throw new ModelSpecException("layers", "missing or empty; give a non-empty array of layers.");
            var standardize = root.TryGetProperty("standardize", out var st) ? ReadStandardize(st, input) : ((float[], float[])?)null;
            var names = new HashSet<string>(StringComparer.Ordinal);
            var layers = ParseLayers(layersEl, "layers", input, names, out _);
            if (standardize is not null && names.Contains("standardize"))
                throw new ModelSpecException("standardize", "a layer is also named \"standardize\", the name of the standardization step; rename that layer.");
            return new ModelSpec(name, input, loss, smoothing, layers, Canonical(root), standardize, reduction, target);
        }
    }

    /// <summary>{"mean":[...],"std":[...]}: one value per input element, or one each for all of them.</summary>
    private static (float[] Mean, float[] Std) ReadStandardize(JsonElement e, int[] input)
    {
        const string path = "standardize";
        if (e.ValueKind != JsonValueKind.Object)
            throw new ModelSpecException(path, $"must be an object {{\"mean\":[...],\"std\":[...]}}, not {Describe(e)}.");
        CheckFields(e, path, ["mean", "std"]);
        int features = input.Aggregate(1, (a, b) => a * b);
        float[] Read(string field, bool positive)
        {
            var fp = Join(path, field);
            if (!e.TryGetProperty(field, out var a))
                throw new ModelSpecException(fp, "missing; give one number per input feature (or one for all).");
            if (a.ValueKind != JsonValueKind.Array || (a.GetArrayLength() != features && a.GetArrayLength() != 1))
                throw new ModelSpecException(fp, $"must be an array of {features} numbers (one per element of input {DistTrain.Tensors.Tensor.ShapeString(input)}) or of one, " +
                                                 $"not {(a.ValueKind == JsonValueKind.Array ? $"{a.GetArrayLength()} numbers" : Describe(a))}.");
            var v = new float[a.GetArrayLength()];
            int i = 0;
            foreach (var x in a.EnumerateArray())
            {
                bool ok = x.ValueKind == JsonValueKind.Number && float.IsFinite((float)x.GetDouble()) && (!positive || x.GetDouble() > 0);
                if (!ok) throw new ModelSpecException($"{fp}[{i}]", $"must be a {(positive ? "positive" : "finite")} number, not {Describe(x)}.");
                v[i++] = (float)x.GetDouble();
            }
            return v;
        }
        var mean = Read("mean", positive: false);
        var std = Read("std", positive: true);
        if (mean.Length != std.Length)
            throw new ModelSpecException(path, $"has {mean.Length} means but {std.Length} stds; give as many of each.");
        return (mean, std);
    }

    internal static List<LayerSpec> ParseLayers(JsonElement array, string path, int[] input, HashSet<string> names, out int[] output)
    {
        var list = new List<LayerSpec>();
        var shape = input;
        int i = 0;
        foreach (var el in array.EnumerateArray())
        {
            var lp = $"{path}[{i++}]";
            var layer = LayerKinds.Parse(el, lp, shape, names);
            list.Add(layer);
            shape = layer.OutputShape;
        }
        output = shape;
        return list;
    }

    internal static void CheckFields(JsonElement obj, string path, IReadOnlyCollection<string> allowed)
    {
        foreach (var p in obj.EnumerateObject())
            if (!allowed.Contains(p.Name))
                throw new ModelSpecException(Join(path, p.Name), $"unknown field \"{p.Name}\"; valid here: {string.Join(", ", allowed)}.");
    }

    internal static string Join(string path, string field) => path.Length == 0 ? field : $"{path}.{field}";

    internal static string RequireString(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.String ? e.GetString()! : throw new ModelSpecException(path, $"must be a string, not {Describe(e)}.");

    internal static int[] ReadShape(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() == 0)
            throw new ModelSpecException(path, $"must be a non-empty array of positive integers, not {Describe(e)}.");
        var shape = new int[e.GetArrayLength()];
        int i = 0;
        foreach (var d in e.EnumerateArray())
        {
            if (!LayerKinds.IsInt(d) || d.GetDouble() <= 0)
                throw new ModelSpecException($"{path}[{i}]", $"must be a positive integer, not {Describe(d)}.");
            shape[i++] = (int)d.GetDouble();
        }
        return shape;
    }

    internal static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => $"\"{e.GetString()}\"",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        _ => e.GetRawText(),
    };

    /// <summary>Sorted keys, no whitespace, numbers normalised (3.0 → 3): equal specs hash equal.</summary>
    internal static string Canonical(JsonElement root)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms)) Write(w, root);
        return Encoding.UTF8.GetString(ms.ToArray());

        static void Write(Utf8JsonWriter w, JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    w.WriteStartObject();
                    foreach (var p in e.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                    {
                        w.WritePropertyName(p.Name);
                        Write(w, p.Value);
                    }
                    w.WriteEndObject();
                    break;
                case JsonValueKind.Array:
                    w.WriteStartArray();
                    foreach (var x in e.EnumerateArray()) Write(w, x);
                    w.WriteEndArray();
                    break;
                case JsonValueKind.Number:
                    var d = e.GetDouble();
                    if (d == Math.Floor(d) && Math.Abs(d) < 1e15) w.WriteNumberValue((long)d); else w.WriteNumberValue(d);
                    break;
                default:
                    e.WriteTo(w);
                    break;
            }
        }
    }

    public override string ToString() => $"ModelSpec({Name}, input={DistTrain.Tensors.Tensor.ShapeString(Input)}, {Layers.Count} layers, loss={Loss})";
}
