// Learned positional embedding added to a token sequence: y = x + pos_embedding, pos_embedding (1,T,E)
// initialised from N(0, 0.02²) as torchvision's ViT does. Letters: B batch, T tokens, E embed dim.
using DistTrain.Nn.Init;
using DistTrain.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class PositionalEmbedding : Layer
{
    private int _n;
    private int[] _shape = [];
    private Tensor? _y;

    public PositionalEmbedding(float std = 0.02f)
    {
        if (!(std >= 0)) throw new ArgumentException($"PositionalEmbedding: std must be non-negative, got {std}.");
        Std = std;
    }

    public float Std { get; }
    public Param Embedding { get; private set; } = null!;

    public override int[] Build(int[] inputShape)
    {
        if (inputShape.Length != 2) throw ShapeError(inputShape, "(T,E) tokens x embed dim");
        _shape = inputShape;
        _n = inputShape[0] * inputShape[1];
        Embedding = DeclareParam("pos_embedding", 1, inputShape[0], inputShape[1]);
        return inputShape;
    }

    public override void ResetParameters(Random rng) => Initializers.Normal(Embedding.Value.Span, rng, 0, Std);

    // x (B,T,E) -> y (B,T,E) = x + pos_embedding
    public override Tensor Forward(Tensor x, in StepContext ctx)
    {
        var y = Workspace.Ensure(ref _y, x.Dim(0), _shape);
        var xs = x.Span; var ys = y.Span; var pe = Embedding.Value.Span;
        for (int b = 0; b < x.Dim(0); b++) TensorPrimitives.Add(xs.Slice(b * _n, _n), pe, ys.Slice(b * _n, _n));
        return y;
    }

    // dy (B,T,E) -> dx = dy (passed on untouched); dpos_embedding += Σ_b dy[b] (samples in order)
    public override Tensor Backward(Tensor dy)
    {
        var ds = dy.Span; var g = Embedding.Grad.Span;
        for (int b = 0; b < dy.Dim(0); b++) TensorPrimitives.Add(g, ds.Slice(b * _n, _n), g);
        return dy;
    }

    public override string ToString() => $"PositionalEmbedding(std={BatchNormBase.Py(Std)})";
}
