// Flatten (PyTorch nn.Flatten()): (B, d1, ..., dn) -> (B, d1·…·dn) as a view, no copy.
// The views are cached (two per direction, so a caller alternating two input buffers is covered too)
// so a steady-state step allocates nothing.
using DistTrain.Tensors;

namespace DistTrain.Nn.Layers;

public sealed class Flatten : Layer
{
    private int[] _inShape = [], _outShape = [];
    private int _features;
    private Tensor? _yView, _yView2, _dxView, _dxView2;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length == 0) throw ShapeError(inputShape, "a per-sample shape with at least one dimension");
        _inShape = inputShape;
        _features = 1;
        foreach (var d in inputShape) _features *= d;
        return _outShape = [_features];
    }

    // x (B, d1..dn) -> y (B, F) view of x
    public override Tensor Forward(Tensor x, in StepContext ctx) => View(ref _yView, ref _yView2, x, _outShape);

    // dy (B, F) -> dx (B, d1..dn) view of dy
    public override Tensor Backward(Tensor dy) => View(ref _dxView, ref _dxView2, dy, _inShape);

    private static Tensor View(ref Tensor? cache, ref Tensor? older, Tensor src, int[] sampleShape)
    {
        int batch = src.Dim(0);
        if (Matches(cache, src, batch)) return cache!;
        if (Matches(older, src, batch)) { (cache, older) = (older, cache); return cache!; }
        older = cache;
        var shape = new int[sampleShape.Length + 1];
        shape[0] = batch;
        sampleShape.CopyTo(shape, 1);
        return cache = new Tensor(src.Buffer, src.Offset, shape);
    }

    private static bool Matches(Tensor? view, Tensor src, int batch) =>
        view is not null && ReferenceEquals(view.Buffer, src.Buffer) && view.Offset == src.Offset && view.Dim(0) == batch;

    public override string ToString() => "Flatten()";
}
