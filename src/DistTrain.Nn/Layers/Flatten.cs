// Flatten (PyTorch nn.Flatten()): (B, d1, ..., dn) -> (B, d1·…·dn) as a view, no copy.
// The views are cached so a steady-state step allocates nothing.
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class Flatten : Layer
{
    private int[] _inShape = [];
    private int _features;
    private Tensor? _yView, _dxView;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length == 0) throw ShapeError(inputShape, "a per-sample shape with at least one dimension");
        _inShape = inputShape;
        _features = 1;
        foreach (var d in inputShape) _features *= d;
        return [_features];
    }

    // x (B, d1..dn) -> y (B, F) view of x
    public override Tensor Forward(Tensor x, in StepContext ctx) => View(ref _yView, x, [_features]);

    // dy (B, F) -> dx (B, d1..dn) view of dy
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

    public override string ToString() => "Flatten()";
}
