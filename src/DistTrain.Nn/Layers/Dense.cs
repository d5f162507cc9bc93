// Fully connected layer (PyTorch nn.Linear): y = x·Wᵀ + b over the last dimension, on Gemm.Sgemm.
// Letters: R = rows = B × (leading dims), I = in features, O = out features. weight (O,I), bias (O).
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Nn.Layers;

public sealed class Dense : Layer
{
    private Param _weight = null!, _bias = null!;
    private int[] _inShape = [], _outShape = [];
    private Tensor? _x, _y, _dx;

    public Dense(int inFeatures, int outFeatures, bool bias = true, string init = "default")
    {
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new ArgumentException($"Dense(in={inFeatures}, out={outFeatures}): sizes must be positive.");
        DefaultInit.Validate(init, $"Dense(in={inFeatures}, out={outFeatures})");
        In = inFeatures; Out = outFeatures; HasBias = bias; Init = init;
    }

    public int In { get; }
    public int Out { get; }
    public bool HasBias { get; }
    /// <summary>Initialisation spec (see <see cref="DefaultInit.Apply"/>); "default" is PyTorch's.</summary>
    public string Init { get; }
    public Param Weight => _weight;
    public Param? Bias => HasBias ? _bias : null;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length == 0 || inputShape[^1] != In)
            throw ShapeError(inputShape, $"(..., {In}): the last dimension must be in={In}");
        _inShape = inputShape;
        _outShape = (int[])inputShape.Clone();
        _outShape[^1] = Out;
        _weight = DeclareParam("weight", Out, In);
        if (HasBias) _bias = DeclareParam("bias", Out);
        return _outShape;
    }

    public override void ResetParameters(Random rng) =>
        DefaultInit.Apply(Init, _weight.Value, HasBias ? _bias.Value : null, In, Out, rng, $"Layer {Name} {this}");

    // x (B, ..., I) -> y (B, ..., O)
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        int batch = x.Dim(0);
        var y = Workspace.Ensure(ref _y, batch, _outShape);
        int rows = x.Length / In;
        var ys = y.Span;
        // Start each output's FMA chain from its bias: one GEMM pass, no separate bias sweep.
        if (HasBias)
        {
            var b = _bias.Value.Span;
            for (int r = 0; r < rows; r++) b.CopyTo(ys.Slice(r * Out, Out));
        }
        Gemm.Sgemm(false, true, rows, Out, In, x.Span, In, _weight.Value.Span, In, ys, Out, accumulate: HasBias);
        _x = x;
        return y;
    }

    // dy (B, ..., O) -> dx (B, ..., I); dW (O,I) += dyᵀ·x; db (O) += Σ_rows dy
    public override Tensor Backward(Tensor dy)
    {
        var x = _x ?? throw new InvalidOperationException($"Layer {Name} {this}: Backward called before Forward.");
        int batch = x.Dim(0), rows = x.Length / In;
        var dys = dy.Span;
        Gemm.Sgemm(true, false, Out, In, rows, dys, Out, x.Span, In, _weight.Grad.Span, In, accumulate: true);
        if (HasBias)
        {
            // Rows in order: each db element is one fixed-order sum, whatever the vector width.
            var db = _bias.Grad.Span;
            for (int r = 0; r < rows; r++)
                System.Numerics.Tensors.TensorPrimitives.Add(db, dys.Slice(r * Out, Out), db);
        }
        var dx = Workspace.Ensure(ref _dx, batch, _inShape);
        if (ComputeInputGrad)
            Gemm.Sgemm(false, false, rows, In, Out, dys, Out, _weight.Value.Span, In, dx.Span, In);
        return dx;
    }

    public override string ToString() =>
        $"Dense(in={In}, out={Out}{(HasBias ? "" : ", bias=false")}{(Init == "default" ? "" : $", init={Init}")})";
}
