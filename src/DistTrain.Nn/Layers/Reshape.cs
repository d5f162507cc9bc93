// Reshape (PyTorch x.view(B, ...shape)): (B, ...in) -> (B, ...shape) as a view, no copy; used to read
// an image (1,28,28) as a 28-step sequence (28,28). The views are cached: a steady step allocates nothing.
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class Reshape(params int[] shape) : Layer
{
    private readonly int[] _shape = (int[])shape.Clone();
    private int[] _inShape = [];
    private Tensor? _yView, _dxView;

    /// <summary>The per-sample output shape.</summary>
    public IReadOnlyList<int> Shape => _shape;

    public override int[] Build(int[] inputShape)
    {
        long a = 1, b = 1;
        foreach (var d in inputShape) a *= d;
        foreach (var d in _shape) b *= d;
        if (a != b || _shape.Length == 0 || _shape.Any(d => d <= 0))
            throw ShapeError(inputShape, $"{b} values per sample to reshape to {Tensor.ShapeString(_shape)}");
        _inShape = inputShape;
        return (int[])_shape.Clone();
    }

    // x (B, ...in) -> y (B, ...shape), a view of x
    public override Tensor Forward(Tensor x, in StepContext ctx) => View(ref _yView, x, _shape);

    // dy (B, ...shape) -> dx (B, ...in), a view of dy
    public override Tensor Backward(Tensor dy) => View(ref _dxView, dy, _inShape);

    private static Tensor View(ref Tensor? cache, Tensor src, int[] sampleShape)
    {
        int batch = src.Dim(0);
        if (cache is not null && ReferenceEquals(cache.Buffer, src.Buffer) && cache.Offset == src.Offset && cache.Dim(0) == batch)
            return cache;
        var shape = new int[sampleShape.Length + 1];
        shape[0] = batch;
        sampleShape.CopyTo(shape, 1);
        return cache = new Tensor(src.Buffer, src.Offset, shape);
    }

    public override string ToString() => $"Reshape(shape={Tensor.ShapeString(_shape)})";
}
