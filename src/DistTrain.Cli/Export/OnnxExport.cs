// Writes a trained model as an ONNX file (opset 17, IR 8) that ONNX Runtime and other tools run in
// inference mode: input "input" (batch, ...InputShape), output "output" (batch, ...OutputShape), the
// model's raw outputs (logits for a classifier). Each layer becomes the standard ONNX operators that
// compute what its Forward computes in eval mode; weights are float initializers under their
// state_dict names. Built on OnnxSharp's generated ONNX protobuf classes (Google.Protobuf).
using System.Globalization;
using DistTrain.Nn;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using Google.Protobuf;
using Onnx;

namespace DistTrain.Cli.Export;

public static class OnnxExport
{
    public const int Opset = 17;

    /// <summary>Layer types the exporter handles; any other is refused by name before anything is written.</summary>
    public static readonly string[] Supported =
        ["Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Reshape", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax",
         "Dropout", "Standardize", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "ResidualBlock", "Rnn", "Lstm", "Gru"];

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> (atomically: a temporary file, then a rename).</summary>
    public static void Write(Sequential model, string path, string name = "disttrain")
    {
        var bytes = Build(model, name).ToByteArray();
        var tmp = path + ".tmp";
        File.WriteAllBytes(tmp, bytes);
        File.Move(tmp, path, overwrite: true);
    }

    public static ModelProto Build(Sequential model, string name = "disttrain")
    {
        var g = new Graph();
        string x = "input";
        int[] shape = model.InputShape;
        foreach (var layer in model.Layers) (x, shape) = g.Emit(layer, x, shape);
        g.Proto.Name = name;
        g.Proto.Input.Add(Value("input", model.InputShape));
        g.Proto.Output.Add(Value("output", model.OutputShape));
        g.Proto.Node.Add(Node("Identity", [x], ["output"], "output"));
        var m = new ModelProto { IrVersion = 8, ProducerName = "DistTrain", ProducerVersion = "1", Graph = g.Proto, ModelVersion = 1 };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return m;
    }

    static ValueInfoProto Value(string name, int[] sampleShape)
    {
        var tensorShape = new TensorShapeProto();
        tensorShape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        foreach (var d in sampleShape) tensorShape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = tensorShape } },
        };
    }

    static NodeProto Node(string op, string[] inputs, string[] outputs, string name, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>The graph being built: nodes and initializers, with unique value names.</summary>
    sealed class Graph
    {
        public readonly GraphProto Proto = new();
        int _next;

        string Fresh(string hint) => $"{hint}:{_next++}";

        string Initializer(string name, int[] dims, ReadOnlySpan<float> values)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            t.Dims.AddRange(dims.Select(d => (long)d));
            var bytes = new byte[values.Length * 4];
            for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(4 * i), values[i]); // little-endian raw data, as ONNX stores it
            t.RawData = ByteString.CopyFrom(bytes);
            Proto.Initializer.Add(t);
            return name;
        }

        string Param(Param p) => Initializer(p.Name, p.Shape, p.Value.Span);

        string Int64s(string name, params long[] values)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            t.Dims.Add(values.Length);
            t.Int64Data.AddRange(values);
            Proto.Initializer.Add(t);
            return name;
        }

        string Op(string op, string name, string[] inputs, params AttributeProto[] attributes)
        {
            var y = Fresh(name);
            Proto.Node.Add(Node(op, inputs, [y], y, attributes));
            return y;
        }

        /// <summary>Adds the nodes of one layer reading <paramref name="x"/> (B, ...shape); returns its output and shape.</summary>
        public (string Y, int[] Shape) Emit(Layer layer, string x, int[] shape)
        {
            string n = layer.Name.Length > 0 ? layer.Name : layer.GetType().Name;
            switch (layer)
            {
                case Dense d:
                {
                    var w = Param(d.Weight);
                    if (shape.Length == 1)
                    {
                        var inputs = d.Bias is { } b ? new[] { x, w, Param(b) } : new[] { x, w };
                        return (Op("Gemm", n, inputs, Int("transB", 1)), [d.Out]);
                    }
                    // Over the last dimension of (B, ..., F): x · Wᵀ (+ b), with Wᵀ as its own initializer.
                    var wt = new float[d.In * d.Out];
                    var ws = d.Weight.Value.Span;
                    for (int o = 0; o < d.Out; o++)
                        for (int i = 0; i < d.In; i++) wt[i * d.Out + o] = ws[o * d.In + i];
                    var y = Op("MatMul", n, [x, Initializer(d.Weight.Name + ".T", [d.In, d.Out], wt)]);
                    if (d.Bias is { } bias) y = Op("Add", n + ".bias", [y, Param(bias)]);
                    return (y, [.. shape[..^1], d.Out]);
                }
                case Conv2d c:
                {
                    var bias = c.HasBias ? c.OwnParams.Single(p => p.LocalName == "bias") : null;
                    var weight = c.OwnParams.Single(p => p.LocalName == "weight");
                    var inputs = bias is null ? new[] { x, Param(weight) } : new[] { x, Param(weight), Param(bias) };
                    int oh = (shape[1] + 2 * c.Padding - c.KernelH) / c.Stride + 1, ow = (shape[2] + 2 * c.Padding - c.KernelW) / c.Stride + 1;
                    return (Op("Conv", n, inputs, Ints("kernel_shape", c.KernelH, c.KernelW), Ints("strides", c.Stride, c.Stride),
                        Ints("pads", c.Padding, c.Padding, c.Padding, c.Padding)), [c.OutChannels, oh, ow]);
                }
                case Pool2dLayer p:
                {
                    int oh = (shape[1] - p.Kernel) / p.Stride + 1, ow = (shape[2] - p.Kernel) / p.Stride + 1;
                    return (Op(p is MaxPool2d ? "MaxPool" : "AveragePool", n, [x], Ints("kernel_shape", p.Kernel, p.Kernel), Ints("strides", p.Stride, p.Stride)),
                        [shape[0], oh, ow]);
                }
                case Flatten:
                    return (Op("Flatten", n, [x], Int("axis", 1)), [shape.Aggregate(1, (a, b) => a * b)]);
                case Reshape r:
                {
                    var target = r.Shape.ToArray();
                    // 0 keeps the batch dimension of the input.
                    return (Op("Reshape", n, [x, Int64s(n + ".shape", [0, .. target.Select(v => (long)v)])]), target);
                }
                case ReLU: return (Op("Relu", n, [x]), shape);
                case LeakyReLU l: return (Op("LeakyRelu", n, [x], Float("alpha", l.NegativeSlope)), shape);
                case Sigmoid: return (Op("Sigmoid", n, [x]), shape);
                case Tanh: return (Op("Tanh", n, [x]), shape);
                case Softmax: return (Op("Softmax", n, [x], Int("axis", -1)), shape);
                case Dropout: return (x, shape); // identity in inference
                case GELU gelu:
                {
                    if (gelu.Approximate != "none") throw Refuse(layer, "GELU with approximate=\"tanh\" is not exported yet");
                    // ½ x (1 + erf(x / √2))
                    var scaled = Op("Div", n + ".div", [x, Initializer(Fresh(n + ".sqrt2"), [], [MathF.Sqrt(2f)])]);
                    var erf = Op("Erf", n + ".erf", [scaled]);
                    var onePlus = Op("Add", n + ".add", [erf, Initializer(Fresh(n + ".one"), [], [1f])]);
                    var half = Op("Mul", n + ".half", [x, Initializer(Fresh(n + ".half"), [], [0.5f])]);
                    return (Op("Mul", n, [half, onePlus]), shape);
                }
                case Standardize s:
                {
                    int[] dims = s.Mean.Count == 1 ? [] : shape;
                    var centred = Op("Sub", n + ".sub", [x, Initializer(n + ".mean", dims, s.Mean.ToArray())]);
                    return (Op("Div", n, [centred, Initializer(n + ".std", dims, s.Std.ToArray())]), shape);
                }
                case BatchNormBase bn:
                    return (Op("BatchNormalization", n, [x, Param(bn.Weight), Param(bn.Bias), Param(bn.RunningMean), Param(bn.RunningVar)],
                        Float("epsilon", bn.Eps)), shape);
                case LayerNorm ln:
                {
                    var w = ln.OwnParams.Single(p => p.LocalName == "weight");
                    var b = ln.OwnParams.Single(p => p.LocalName == "bias");
                    return (Op("LayerNormalization", n, [x, Param(w), Param(b)], Int("axis", -ln.NormalizedShape.Count), Float("epsilon", ln.Eps)), shape);
                }
                case ResidualBlock block:
                {
                    // relu(main(x) + shortcut(x))
                    string h = x; int[] hs = shape;
                    foreach (var (_, l) in block.Main) (h, hs) = Emit(l, h, hs);
                    string s = x;
                    foreach (var (_, l) in block.Shortcut) (s, _) = Emit(l, s, shape);
                    return (Op("Relu", n + ".relu", [Op("Add", n + ".add", [h, s])]), hs);
                }
                case RecurrentLayer rec:
                    return Recurrent(rec, n, x, shape);
                default:
                    throw Refuse(layer, $"{layer.GetType().Name} layers are not exported yet (exported: {string.Join(", ", Supported)})");
            }
        }

        // x (B,T,F) -> ONNX RNN / LSTM / GRU over (T,B,F) with a zero initial state -> (B,H), or (B,T,H) with return_sequences.
        (string, int[]) Recurrent(RecurrentLayer rec, string n, string x, int[] shape)
        {
            int h = rec.HiddenSize, f = rec.InputSize, g = rec.Gates;
            // ONNX's gate blocks in PyTorch's order: LSTM i,o,f,c from i,f,g,o; GRU z,r,h from r,z,n.
            int[] order = rec switch { Lstm => [0, 3, 1, 2], Gru => [1, 0, 2], _ => [0] };
            float[] Blocks(Param p, int cols)
            {
                var src = p.Value.Span;
                var dst = new float[g * h * cols];
                for (int k = 0; k < g; k++) src.Slice(order[k] * h * cols, h * cols).CopyTo(dst.AsSpan(k * h * cols));
                return dst;
            }
            var w = Initializer(n + ".W", [1, g * h, f], Blocks(rec.WeightIh, f));
            var r = Initializer(n + ".R", [1, g * h, h], Blocks(rec.WeightHh, h));
            var b = Initializer(n + ".B", [1, 2 * g * h], [.. Blocks(rec.BiasIh, 1), .. Blocks(rec.BiasHh, 1)]);
            var tbf = Op("Transpose", n + ".time_major", [x], Ints("perm", 1, 0, 2));
            string y = Fresh(n + ".Y"), yh = Fresh(n + ".Y_h");
            var attributes = new List<AttributeProto> { Int("hidden_size", h) };
            if (rec is Gru) attributes.Add(Int("linear_before_reset", 1)); // PyTorch: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
            string op = rec switch { Lstm => "LSTM", Gru => "GRU", _ => "RNN" };
            var outputs = rec is Lstm ? new[] { y, yh, Fresh(n + ".Y_c") } : new[] { y, yh };
            Proto.Node.Add(Node(op, [tbf, w, r, b], outputs, n, [.. attributes]));
            if (!rec.ReturnSequences)
                return (Op("Squeeze", n + ".last", [yh, Int64s(Fresh(n + ".axes"), 0)]), [h]); // (1,B,H) -> (B,H)
            var seq = Op("Squeeze", n + ".seq", [y, Int64s(Fresh(n + ".axes"), 1)]);   // (T,1,B,H) -> (T,B,H)
            return (Op("Transpose", n + ".batch_major", [seq], Ints("perm", 1, 0, 2)), [shape[0], h]);
        }

        static ArgumentException Refuse(Layer layer, string why) =>
            new($"Cannot export layer {layer.Name} {layer}: {why}.");
    }
}
