// Residual block: y = relu(main(x) + shortcut(x)), the shortcut being the identity or a projection
// (PyTorch torchvision BasicBlock: conv1, bn1, relu, conv2, bn2, downsample.0 (1x1 conv), downsample.1 (norm)).
// Generic over its inner layers, so any norm layer (BatchNorm2d) can sit in either path.
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class ResidualBlock : Layer
{
    private readonly (string Name, Layer Layer)[] _main, _shortcut;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _y, _dz, _dx;

    /// <param name="main">Main-path layers with their child names, applied in order.</param>
    /// <param name="shortcut">Projection layers (1x1 conv stride s, optional norm), or null/empty for the identity.</param>
    public ResidualBlock(IEnumerable<(string Name, Layer Layer)> main, IEnumerable<(string Name, Layer Layer)>? shortcut = null)
    {
        _main = main.ToArray();
        _shortcut = shortcut?.ToArray() ?? [];
        if (_main.Length == 0) throw new ArgumentException("ResidualBlock: the main path needs at least one layer.", nameof(main));
        var names = _main.Concat(_shortcut).Select(c => c.Name).ToList();
        var dup = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1 || string.IsNullOrWhiteSpace(g.Key));
        if (dup is not null) throw new ArgumentException($"ResidualBlock: child name '{dup.Key}' is empty or used twice; give each inner layer its own name.");
    }

    /// <summary>torchvision's BasicBlock: conv3x3(stride) → norm → ReLU → conv3x3 → norm, plus a projection
    /// (1x1 conv stride s → norm) when the stride or channel count changes. Without a norm the convs have biases.</summary>
    public static ResidualBlock Basic(int inChannels, int outChannels, int stride = 1, Func<int, Layer>? norm = null)
    {
        bool bias = norm is null;
        var main = new List<(string, Layer)> { ("conv1", new Conv2d(inChannels, outChannels, 3, stride, 1, bias)) };
        if (norm is not null) main.Add(("bn1", norm(outChannels)));
        main.Add(("relu", new ReLU()));
        main.Add(("conv2", new Conv2d(outChannels, outChannels, 3, 1, 1, bias)));
        if (norm is not null) main.Add(("bn2", norm(outChannels)));
        List<(string, Layer)>? shortcut = null;
        if (stride != 1 || inChannels != outChannels)
        {
            shortcut = [("downsample.0", new Conv2d(inChannels, outChannels, 1, stride, 0, bias))];
            if (norm is not null) shortcut.Add(("downsample.1", norm(outChannels)));
        }
        return new ResidualBlock(main, shortcut);
    }

    public override IEnumerable<(string Name, Layer Layer)> Children => _main.Concat(_shortcut);

    /// <summary>The main path's layers, in order.</summary>
    public IReadOnlyList<(string Name, Layer Layer)> Main => _main;
    /// <summary>The projection shortcut's layers, empty for the identity.</summary>
    public IReadOnlyList<(string Name, Layer Layer)> Shortcut => _shortcut;

    public override int[] Build(int[] inputShape)
    {
        _inShape = inputShape;
        var m = Chain(_main, inputShape, "main path");
        var s = _shortcut.Length > 0 ? Chain(_shortcut, inputShape, "shortcut") : inputShape;
        if (!m.AsSpan().SequenceEqual(s))
            throw new ArgumentException($"Layer {Name} {this}: main path gives {Tensor.ShapeString(m)} but the shortcut gives " +
                                        $"{Tensor.ShapeString(s)} for input {Tensor.ShapeString(inputShape)}; add or fix the projection shortcut.");
        _outShape = m;
        return m;
    }

    private int[] Chain((string Name, Layer Layer)[] path, int[] shape, string what)
    {
        foreach (var (name, layer) in path)
        {
            try { shape = layer.Build(shape); }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Layer {Name} {this}, {what} layer '{name}' {layer}: {e.Message}", e);
            }
        }
        return shape;
    }

    // x (B, ...in) -> y (B, ...out) = relu(main(x) + shortcut(x))
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        var h = x;
        foreach (var (_, layer) in _main) h = layer.Forward(h, ctx);
        var s = x;
        foreach (var (_, layer) in _shortcut) s = layer.Forward(s, ctx);
        var y = Workspace.Ensure(ref _y, x.Dim(0), _outShape);
        TensorPrimitives.Add(h.Span, s.Span, y.Span);
        TensorPrimitives.Max(y.Span, 0f, y.Span);
        return y;
    }

    // dy (B, ...out) -> dz = dy ⊙ [y > 0]; dx = main'(dz) + shortcut'(dz)
    public override Tensor Backward(Tensor dy)
    {
        var y = _y ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        var dz = Workspace.Ensure(ref _dz, dy.Dim(0), _outShape);
        Elementwise.ReluBackward(y.Span, dy.Span, dz.Span);
        _main[0].Layer.ComputeInputGrad = ComputeInputGrad;
        var gm = dz;
        for (int i = _main.Length - 1; i >= 0; i--) gm = _main[i].Layer.Backward(gm);
        var gs = dz;
        if (_shortcut.Length > 0)
        {
            _shortcut[0].Layer.ComputeInputGrad = ComputeInputGrad;
            for (int i = _shortcut.Length - 1; i >= 0; i--) gs = _shortcut[i].Layer.Backward(gs);
        }
        var dx = Workspace.Ensure(ref _dx, dy.Dim(0), _inShape);
        if (ComputeInputGrad) TensorPrimitives.Add(gm.Span, gs.Span, dx.Span);
        return dx;
    }

    public override string ToString() =>
        $"ResidualBlock(main=[{string.Join(", ", _main.Select(c => c.Name))}], shortcut={(_shortcut.Length == 0 ? "identity" : $"[{string.Join(", ", _shortcut.Select(c => c.Name))}]")})";
}
