// A block of named layers wired by their inputs (a model graph inside one layer): branches that read the same tensor,
// and merges that join them — `add` (residual connections) and `concat` (Inception's branches, along the first
// per-sample dimension: channels of (C,H,W), features of (F)). Nodes run in a fixed topological order and back-propagate
// in its reverse; a tensor read by several nodes gets their gradients summed in that reverse order, so bits are fixed.
// Children are the layer nodes (parameters "<block>.<node>.<param>"). Letters: B batch.
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public enum BlockMerge { None, Add, Concat }

/// <summary>One node of a block: a layer reading one input, or a merge of several. Input −1 is the block's input.</summary>
public sealed record BlockNode(string Name, Layer? Layer, BlockMerge Merge, int[] Inputs);

public sealed class Block : Layer
{
    private readonly BlockNode[] _nodes;
    private readonly int _output;
    private int[] _inShape = [];
    private int[][] _shapes = [];
    private Tensor?[] _mergeOut = [], _grad = [];
    private Tensor?[] _out = [];
    private bool[] _hasGrad = [];
    private Tensor? _dx;

    /// <param name="nodes">In topological order: every input names the block input (−1) or an earlier node.</param>
    /// <param name="output">The node whose tensor the block returns.</param>
    public Block(IReadOnlyList<BlockNode> nodes, int output)
    {
        if (nodes.Count == 0) throw new ArgumentException("Block: needs at least one node.", nameof(nodes));
        var seen = new HashSet<string>();
        for (int i = 0; i < nodes.Count; i++)
        {
            var n = nodes[i];
            if (string.IsNullOrWhiteSpace(n.Name) || n.Name.Contains('.') || !seen.Add(n.Name))
                throw new ArgumentException($"Block: node name '{n.Name}' is empty, contains '.', or is used twice.", nameof(nodes));
            if ((n.Merge == BlockMerge.None) != (n.Layer is not null) || n.Inputs.Length == 0 || (n.Merge == BlockMerge.None && n.Inputs.Length != 1))
                throw new ArgumentException($"Block: node {n.Name} must be a layer with one input or a merge with its inputs.", nameof(nodes));
            foreach (var j in n.Inputs)
                if (j < -1 || j >= i) throw new ArgumentException($"Block: node {n.Name} reads node {j}, which is not before it (nodes must be in topological order).", nameof(nodes));
        }
        if ((uint)output >= (uint)nodes.Count) throw new ArgumentException($"Block: output node {output} does not exist.", nameof(output));
        _nodes = nodes.ToArray();
        _output = output;
    }

    public IReadOnlyList<BlockNode> Nodes => _nodes;

    public override IEnumerable<(string Name, Layer Layer)> Children =>
        _nodes.Where(n => n.Layer is not null).Select(n => (n.Name, n.Layer!));

    public override int[] Build(int[] inputShape)
    {
        _inShape = inputShape;
        int count = _nodes.Length;
        _shapes = new int[count][];
        _out = new Tensor?[count]; _mergeOut = new Tensor?[count]; _grad = new Tensor?[count + 1]; _hasGrad = new bool[count + 1];
        int[] ShapeOf(int j) => j < 0 ? inputShape : _shapes[j];
        for (int i = 0; i < count; i++)
        {
            var n = _nodes[i];
            _shapes[i] = n.Merge switch
            {
                BlockMerge.None => n.Layer!.Build(ShapeOf(n.Inputs[0])),
                BlockMerge.Add => AddShape(n, n.Inputs.Select(ShapeOf).ToArray()),
                _ => ConcatShape(n, n.Inputs.Select(ShapeOf).ToArray()),
            };
        }
        return _shapes[_output];
    }

    private int[] AddShape(BlockNode n, int[][] shapes)
    {
        foreach (var s in shapes)
            if (!s.AsSpan().SequenceEqual(shapes[0]))
                throw new ArgumentException($"Layer {Name} {this}: add node {n.Name} joins shapes {string.Join(" and ", shapes.Select(x => Tensor.ShapeString(x)))}; they must be equal.");
        return shapes[0];
    }

    private int[] ConcatShape(BlockNode n, int[][] shapes)
    {
        foreach (var s in shapes)
            if (s.Length != shapes[0].Length || !s.AsSpan(1).SequenceEqual(shapes[0].AsSpan(1)))
                throw new ArgumentException($"Layer {Name} {this}: concat node {n.Name} joins shapes {string.Join(" and ", shapes.Select(x => Tensor.ShapeString(x)))}; " +
                                            "all dimensions but the first (channels) must be equal.");
        var r = (int[])shapes[0].Clone();
        r[0] = shapes.Sum(s => s[0]);
        return r;
    }

    private static int Length(int[] shape) { int p = 1; foreach (var d in shape) p *= d; return p; }

    // x (B, ...in) -> every node in order -> the output node's tensor (B, ...out)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0);
        Tensor In(int j) => j < 0 ? x : _out[j]!;
        for (int i = 0; i < _nodes.Length; i++)
        {
            var n = _nodes[i];
            switch (n.Merge)
            {
                case BlockMerge.None:
                    _out[i] = n.Layer!.Forward(In(n.Inputs[0]), ctx);
                    break;
                case BlockMerge.Add:
                {
                    var y = Workspace.Ensure(ref _mergeOut[i], batch, _shapes[i]);
                    In(n.Inputs[0]).Span.CopyTo(y.Span);
                    for (int k = 1; k < n.Inputs.Length; k++) TensorPrimitives.Add(y.Span, In(n.Inputs[k]).Span, y.Span);
                    _out[i] = y;
                    break;
                }
                default:
                {
                    var y = Workspace.Ensure(ref _mergeOut[i], batch, _shapes[i]);
                    int total = Length(_shapes[i]), at = 0;
                    var ys = y.Span;
                    foreach (var j in n.Inputs)
                    {
                        var src = In(j).Span;
                        int part = src.Length / batch;
                        for (int b = 0; b < batch; b++) src.Slice(b * part, part).CopyTo(ys.Slice(b * total + at, part));
                        at += part;
                    }
                    _out[i] = y;
                    break;
                }
            }
        }
        return _out[_output]!;
    }

    // dy -> each node in reverse order: its gradient goes to its inputs, summed where a tensor feeds several nodes -> dx
    public override Tensor Backward(Tensor dy)
    {
        int batch = dy.Dim(0), count = _nodes.Length;
        Array.Clear(_hasGrad);
        Accumulate(_output, dy, batch);
        for (int i = count - 1; i >= 0; i--)
        {
            if (!_hasGrad[Key(i)]) continue;   // feeds nothing that reaches the output
            var g = _grad[Key(i)]!;
            var n = _nodes[i];
            switch (n.Merge)
            {
                case BlockMerge.None:
                    n.Layer!.ComputeInputGrad = n.Inputs[0] >= 0 || ComputeInputGrad;
                    var d = n.Layer.Backward(g);
                    if (n.Layer.ComputeInputGrad) Accumulate(n.Inputs[0], d, batch);
                    break;
                case BlockMerge.Add:
                    foreach (var j in n.Inputs) Accumulate(j, g, batch);
                    break;
                default:
                {
                    int total = Length(_shapes[i]), at = 0;
                    foreach (var j in n.Inputs)
                    {
                        int part = Length(j < 0 ? _inShape : _shapes[j]);
                        var target = Slot(j, batch);
                        bool first = !_hasGrad[Key(j)];
                        var gs = g.Span; var ts = target.Span;
                        for (int b = 0; b < batch; b++)
                        {
                            var src = gs.Slice(b * total + at, part);
                            var dst = ts.Slice(b * part, part);
                            if (first) src.CopyTo(dst); else TensorPrimitives.Add(dst, src, dst);
                        }
                        _hasGrad[Key(j)] = true;
                        at += part;
                    }
                    break;
                }
            }
        }
        if (_hasGrad[Key(-1)]) return _grad[Key(-1)]!;
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        dx.Clear();
        return dx;
    }

    /// <summary>Slot of a node's output gradient: 0 for the block input, i + 1 for node i.</summary>
    private static int Key(int node) => node + 1;

    private Tensor Slot(int node, int batch) => Workspace.Ensure(ref _grad[Key(node)], batch, node < 0 ? _inShape : _shapes[node]);


    /// <summary>Adds g into the gradient of node's output (the first contribution is copied).</summary>
    private void Accumulate(int node, Tensor g, int batch)
    {
        var slot = Slot(node, batch);
        if (_hasGrad[Key(node)]) TensorPrimitives.Add(slot.Span, g.Span, slot.Span);
        else g.Span.CopyTo(slot.Span);
        _hasGrad[Key(node)] = true;
    }

    public override string ToString() =>
        $"Block({_nodes.Length} nodes: {string.Join(", ", _nodes.Select(n => n.Merge == BlockMerge.None ? n.Name : $"{n.Name}={n.Merge.ToString().ToLowerInvariant()}"))})";
}
