// A model as a chain of layers (PyTorch nn.Sequential): builds shapes in order, names parameters
// "<index>.<param>" (children "<parent>.<child>.<param>"), binds them to one flat ParameterStore,
// and runs Forward / Backward / a whole micro-batch gradient. Relies on the Layer contract only.
using System.Diagnostics;
using System.Text;
using DistTrain.Nn.Losses;
using DistTrain.Tensors;

namespace DistTrain.Nn.Models;

public sealed class Sequential
{
    private readonly Layer[] _layers;
    private readonly Layer[] _all;
    private readonly int[][] _outShapes;
    private Tensor? _dOut;

    /// <summary>Layers named by position ("0", "1", …) as in nn.Sequential; initialised from <paramref name="seed"/>.</summary>
    public Sequential(int[] inputShape, IEnumerable<Layer> layers, int seed = 0)
        : this(inputShape, layers.Select((l, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), l)), seed) { }

    /// <summary>Layers with given names (as nn.Sequential(OrderedDict)); initialised from <paramref name="seed"/>.</summary>
    public Sequential(int[] inputShape, IEnumerable<(string Name, Layer Layer)> layers, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(inputShape);
        if (inputShape.Length == 0 || inputShape.Any(d => d <= 0))
            throw new ArgumentException($"Model input shape {Tensor.ShapeString(inputShape)} must have at least one dimension, all positive.", nameof(inputShape));
        var named = layers.ToArray();
        if (named.Length == 0) throw new ArgumentException("A model needs at least one layer.", nameof(layers));
        InputShape = (int[])inputShape.Clone();
        _layers = named.Select(n => n.Layer).ToArray();

        var seen = new HashSet<string>();
        var flat = new List<Layer>();
        var unique = new HashSet<Layer>(ReferenceEqualityComparer.Instance);
        foreach (var (name, layer) in named)
        {
            if (string.IsNullOrWhiteSpace(name) || name.Contains('.') || !seen.Add(name))
                throw new ArgumentException($"Layer name '{name}' is empty, contains '.', or is used twice; names must be unique and dot-free.", nameof(layers));
            Assign(layer, name, flat, unique);
        }
        _all = flat.ToArray();

        // Shapes chain in order; a layer's Build throws ArgumentException naming itself and the shapes.
        _outShapes = new int[_layers.Length][];
        var shape = InputShape;
        for (int i = 0; i < _layers.Length; i++)
        {
            try { shape = _layers[i].Build(shape); }
            catch (ArgumentException e) when (!e.Message.StartsWith($"Layer {_layers[i].Name} ", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Layer {_layers[i].Name} {_layers[i]}: input shape {Tensor.ShapeString(shape)}: {e.Message}", e);
            }
            _outShapes[i] = shape;
        }
        OutputShape = shape;
        SetInputGradFlags();
        FuseReluPool = Environment.GetEnvironmentVariable("DISTTRAIN_FUSE_RELU_POOL") != "0";

        var all = new List<Param>();
        foreach (var layer in _all)
            foreach (var p in layer.OwnParams)
            {
                p.Name = $"{layer.Name}.{p.LocalName}";
                all.Add(p);
            }
        var dupName = all.GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1);
        if (dupName is not null) throw new ArgumentException($"Two parameters are both named '{dupName.Key}'; give the layers distinct names.");
        Store = new ParameterStore(all);
        ResetParameters(seed);

        // A top-level layer's parameters (its own, then its children's: pre-order) are one contiguous run of the flat
        // buffer, after those of the layers before it; a layer without parameters has an empty run where the next begins.
        _runStart = new int[_layers.Length];
        int from = Store.Count;
        for (int i = _layers.Length - 1; i >= 0; i--)
        {
            int end = i + 1 < _layers.Length ? _layers[i + 1].Index : _all.Length;
            for (int j = end - 1; j >= _layers[i].Index; j--)
                foreach (var p in _all[j].OwnParams)
                    if (!p.IsBuffer) from = Math.Min(from, p.Offset);
            _runStart[i] = from;
        }
    }

    private readonly int[] _runStart;

    /// <summary>
    /// When set, <see cref="Backward"/> calls it after each top-level layer with the flat offset from which every
    /// parameter gradient is final (non-increasing; 0 after the first layer with parameters): a cluster worker sends
    /// that part of the gradient while the layers before it are still back-propagating. Null = off.
    /// </summary>
    public Action<int>? GradientReady { get; set; }

    /// <summary>
    /// When set, <see cref="Forward"/> calls it before each top-level layer with the end of that layer's parameter run:
    /// from then on the forward reads the values below it (non-decreasing; the parameter count before the last layer
    /// with parameters). A cluster worker starts the forward when the first layers' new values have arrived and waits
    /// here for the rest. Null = off.
    /// </summary>
    public Action<int>? ParametersNeeded { get; set; }

    /// <summary>Start of top-level layer i's parameter run (its own and its children's values, contiguous); the run is
    /// empty (start = end) for a layer without parameters.</summary>
    public int ParameterRunStart(int layer) => _runStart[layer];

    /// <summary>End of top-level layer i's parameter run.</summary>
    public int ParameterRunEnd(int layer) => layer + 1 < _layers.Length ? _runStart[layer + 1] : Store.Count;

    // Pre-order: a layer, then its children; Index = position in this order (the per-layer seed index).
    private static void Assign(Layer layer, string name, List<Layer> flat, HashSet<Layer> unique)
    {
        ArgumentNullException.ThrowIfNull(layer);
        if (!unique.Add(layer))
            throw new ArgumentException($"Layer {name} ({layer}) appears twice in the model; create a new instance for each position.");
        layer.Name = name;
        layer.Index = flat.Count;
        flat.Add(layer);
        foreach (var (childName, child) in layer.Children) Assign(child, $"{name}.{childName}", flat, unique);
    }

    /// <summary>
    /// False (default): a layer computes dx only if some earlier layer has learned parameters — nothing
    /// else consumes it, so the MLP's first Dense (after Flatten) skips a third of its backward work, as
    /// PyTorch does for an input that does not require grad. True: every layer computes dx, and
    /// <see cref="Backward"/> returns ∂/∂input.
    /// </summary>
    public bool InputGrad
    {
        get => _inputGrad;
        set { _inputGrad = value; SetInputGradFlags(); }
    }
    private bool _inputGrad;

    /// <summary>
    /// A ReLU directly followed by a MaxPool2d is done by the pool (pool first, then ReLU on the 4× smaller output,
    /// in one pass): the same output and gradients bit for bit, two memory-bound passes over the largest activation
    /// fewer (cnn preset, batch 256: ~15 % of a step). On by default; <c>DISTTRAIN_FUSE_RELU_POOL=0</c> turns it off.
    /// </summary>
    public bool FuseReluPool
    {
        get => _fuseReluPool;
        set
        {
            _fuseReluPool = value;
            for (int i = 0; i + 1 < _layers.Length; i++)
                if (_layers[i] is Layers.ReLU relu && _layers[i + 1] is Layers.MaxPool2d pool)
                    relu.PassThrough = pool.FusedRelu = value;
        }
    }
    private bool _fuseReluPool;

    private void SetInputGradFlags()
    {
        bool needed = _inputGrad;
        foreach (var layer in _layers)
        {
            layer.ComputeInputGrad = needed;
            needed |= HasLearned(layer);
        }
    }

    private static bool HasLearned(Layer layer) =>
        layer.OwnParams.Any(p => !p.IsBuffer) || layer.Children.Any(c => HasLearned(c.Layer));

    /// <summary>Per-sample input shape, e.g. (1,28,28).</summary>
    public int[] InputShape { get; }
    /// <summary>Per-sample output shape, e.g. (10).</summary>
    public int[] OutputShape { get; }
    /// <summary>The top-level layers in order.</summary>
    public IReadOnlyList<Layer> Layers => _layers;
    /// <summary>Every layer, pre-order (a container before its children); layer.Index is its position here.</summary>
    public IReadOnlyList<Layer> AllLayers => _all;
    /// <summary>The flat parameter, gradient and buffer vectors (DESIGN contract 1).</summary>
    public ParameterStore Store { get; }
    /// <summary>Number of learned scalars (buffers excluded), as sum(p.numel() for p in model.parameters()).</summary>
    public int ParameterCount => Store.Count;
    public IEnumerable<Param> Parameters() => Store.Learned;

    /// <summary>Re-initialises every layer (pre-order) from new Random(seed); buffers are reset by their layers.</summary>
    public void ResetParameters(int seed) => ResetParameters(new Random(seed));

    public void ResetParameters(Random rng)
    {
        foreach (var layer in _all) layer.ResetParameters(rng);
    }

    /// <summary>x (B, ...InputShape) -> (B, ...OutputShape). The result is owned by the last layer and reused.</summary>
    public Tensor Forward(Tensor x, in StepContext ctx)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != InputShape.Length + 1 || !x.Shape.AsSpan(1).SequenceEqual(InputShape) || x.Dim(0) < 1)
            throw new ArgumentException($"Model input {x} does not match (B, {string.Join(",", InputShape)}) with B ≥ 1.", nameof(x));
        var h = x;
        var ticks = LayerTicks;
        for (int i = 0; i < _layers.Length; i++)
        {
            ParametersNeeded?.Invoke(ParameterRunEnd(i));
            long t0 = ticks is null ? 0 : Stopwatch.GetTimestamp();
            h = _layers[i].Forward(h, ctx);
            if (ticks is not null) ticks[2 * i] += Stopwatch.GetTimestamp() - t0;
        }
        return h;
    }

    /// <summary>When set (length 2 × top-level layers), Forward adds each layer's Stopwatch ticks to
    /// [2i] and Backward to [2i+1]: a per-layer profile for `disttrain bench train --layers`. Null = off.</summary>
    public long[]? LayerTicks
    {
        get;
        set => field = value is null || value.Length == 2 * _layers.Length ? value
            : throw new ArgumentException($"LayerTicks needs {2 * _layers.Length} entries (2 per layer), not {value.Length}.", nameof(value));
    }

    /// <summary>Back-propagates dOutput (B, ...OutputShape) through every layer, ADDING into the parameter
    /// gradients (call <see cref="ZeroGrad"/> first for a fresh gradient). Returns the first layer's dx: the
    /// input gradient when <see cref="InputGrad"/> is set, else unspecified contents (not computed).</summary>
    public Tensor Backward(Tensor dOutput)
    {
        var g = dOutput;
        var ticks = LayerTicks;
        for (int i = _layers.Length - 1; i >= 0; i--)
        {
            long t0 = ticks is null ? 0 : Stopwatch.GetTimestamp();
            g = _layers[i].Backward(g);
            if (ticks is not null) ticks[2 * i + 1] += Stopwatch.GetTimestamp() - t0;
            GradientReady?.Invoke(_runStart[i]); // layers i.. are done: everything from i's run on is final
        }
        return g;
    }

    public void ZeroGrad() => Store.ZeroGrad();

    /// <summary>The optimizer groups the layers declare (Layer.OptimizerGroups), as ranges of the flat vector named by the
    /// sub-layer (e.g. "gan.generator"); empty for most models. A group's parameters are contiguous (pre-order).</summary>
    public IReadOnlyList<Optimizers.ParameterGroup> ParameterGroups()
    {
        var groups = new List<Optimizers.ParameterGroup>();
        foreach (var layer in _all)
            foreach (var (scope, scale) in layer.OptimizerGroups)
            {
                var ps = Descendants(scope).SelectMany(l => l.OwnParams).Where(p => !p.IsBuffer).ToArray();
                if (ps.Length == 0) continue;
                int from = ps.Min(p => p.Offset), to = ps.Max(p => p.Offset + p.Length);
                if (to - from != ps.Sum(p => p.Length))
                    throw new InvalidOperationException($"The parameters of {scope.Name} are not one contiguous run of the flat vector.");
                groups.Add(new Optimizers.ParameterGroup(scope.Name, from, to - from, scale));
            }
        return groups;
    }

    private static IEnumerable<Layer> Descendants(Layer layer) => layer.Children.SelectMany(c => Descendants(c.Layer)).Prepend(layer);

    /// <summary>Σ of every layer's <see cref="Layer.AddedLoss"/> for the last Forward (pre-order, so the sum's order is
    /// fixed): the part of the objective that is not the loss of the output (a VAE's KL term). Call between Forward and
    /// Backward; the Backward then includes its gradient, scaled by <paramref name="scale"/>. 0 for most models.</summary>
    public double AddedLoss(float scale)
    {
        double sum = 0;
        foreach (var layer in _all) sum += layer.AddedLoss(scale);
        return sum;
    }

    /// <summary>
    /// One micro-batch gradient: ZeroGrad, Forward, loss, Backward. Afterwards Store.Grads holds
    /// scale · ∂(Σ_i loss_i)/∂θ for this micro-batch alone (zeroed first, so each micro-batch gradient is
    /// computed the same way whatever came before — contract 2). Returns Σ_i loss_i (not the mean).
    /// Pass scale = 1/globalBatch so that the sum of the micro-batch gradients is the global mean's gradient.
    /// </summary>
    public double TrainStepGradient(Tensor x, ReadOnlySpan<int> labels, Tensor? targets, Loss loss, float scale, in StepContext ctx)
    {
        ArgumentNullException.ThrowIfNull(loss);
        Store.ZeroGrad();
        var output = Forward(x, ctx);
        var dOut = Workspace.Ensure(ref _dOut, output.Dim(0), OutputShape);
        double sum = loss.Compute(output, labels, targets, dOut, scale) + AddedLoss(scale);
        Backward(dOut);
        return sum;
    }

    /// <summary>Each top-level layer (children indented under it) with its output shape and parameter count,
    /// and the total — columns sized to their contents.</summary>
    public string Summary()
    {
        var rows = new List<(string Name, string Layer, string Output, string Params)> { ("name", "layer", "output", "params"), ("input", "", Tensor.ShapeString(InputShape), "") };
        for (int i = 0; i < _layers.Length; i++)
        {
            rows.Add((_layers[i].Name, _layers[i].ToString(), Tensor.ShapeString(_outShapes[i]), $"{CountParams(_layers[i]):N0}"));
            AddChildren(rows, _layers[i], "  ");
        }
        int wn = rows.Max(r => r.Name.Length), wl = rows.Max(r => r.Layer.Length), wo = rows.Max(r => r.Output.Length), wp = rows.Max(r => r.Params.Length);
        var sb = new StringBuilder();
        foreach (var r in rows)
            sb.AppendLine($"{r.Name.PadRight(wn)}  {r.Layer.PadRight(wl)}  {r.Output.PadRight(wo)}  {r.Params.PadLeft(wp)}".TrimEnd());
        sb.Append($"Total parameters: {ParameterCount:N0}");
        if (Store.Buffers.Length > 0) sb.Append($" (+ {Store.Buffers.Length:N0} buffer values)");
        return sb.ToString();
    }

    private static void AddChildren(List<(string, string, string, string)> rows, Layer layer, string indent)
    {
        foreach (var (_, child) in layer.Children)
        {
            rows.Add((indent + child.Name, child.ToString(), "", $"{CountParams(child):N0}"));
            AddChildren(rows, child, indent + "  ");
        }
    }

    private static long CountParams(Layer layer) =>
        layer.OwnParams.Where(p => !p.IsBuffer).Sum(p => (long)p.Length) + layer.Children.Sum(c => CountParams(c.Layer));

    public override string ToString() => $"Sequential({_layers.Length} layers, {ParameterCount:N0} parameters)";
}
