// Error feedback for top-k compression (`--compression topk`): what a block of a micro-batch gradient did not send is
// kept as a residual and added to the next micro-batch gradient this computer makes, so no part of the gradient is
// lost, only delayed. Per block: a = g + r; the gradient becomes top-k(a) (GradientCodec.SelectTopK) and the residual
// a − top-k(a), both exact in float (a kept entry's residual is 0, another's is a). The residual belongs to whoever
// computes micro-batches — the one-process Trainer, or a cluster worker — so one process and a one-worker cluster give
// the same bits, and several workers do not. It is not checkpointed: a resumed top-k run starts with a zero residual.
namespace DistTrain.Training.Steps;

public sealed class ErrorFeedback(int length)
{
    private readonly float[] _residual = new float[length];

    public ReadOnlySpan<float> Residual => _residual;

    /// <summary>
    /// Applies feedback to the whole top-k blocks in [<paramref name="from"/>, <paramref name="to"/>) of the flat gradient
    /// <paramref name="g"/> (from a multiple of TopKBlock; to one too, or the end): g becomes what top-k sends of g + residual,
    /// the residual what it does not.
    /// </summary>
    public void Apply(Span<float> g, int from, int to)
    {
        if (g.Length != _residual.Length) throw new ArgumentException($"gradient of {g.Length} values, residual of {_residual.Length}.", nameof(g));
        if (from % GradientCodec.TopKBlock != 0 || (to % GradientCodec.TopKBlock != 0 && to != g.Length) || from > to)
            throw new ArgumentOutOfRangeException(nameof(from), $"[{from}, {to}) is not a run of whole top-k blocks of {g.Length} values.");
        Span<int> kept = stackalloc int[GradientCodec.TopK];
        for (int b = from; b < to; b += GradientCodec.TopKBlock)
        {
            int n = Math.Min(GradientCodec.TopKBlock, g.Length - b);
            var a = g.Slice(b, n);
            var r = _residual.AsSpan(b, n);
            for (int i = 0; i < n; i++) { a[i] += r[i]; r[i] = a[i]; }
            int count = GradientCodec.SelectTopK(a, kept);
            a.Clear();
            for (int e = 0; e < count; e++) { a[kept[e]] = r[kept[e]]; r[kept[e]] = 0f; }
        }
    }
}
