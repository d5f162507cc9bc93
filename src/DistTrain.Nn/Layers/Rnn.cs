// Elman RNN layer with tanh (PyTorch nn.RNN, one layer, batch_first, zero initial state):
// h_t = tanh(W_ih x_t + b_ih + W_hh h₍t−1₎ + b_hh). See RecurrentLayer.
using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace DistTrain.Nn.Layers;

public sealed class Rnn(int hiddenSize, bool returnSequences = false, int? inputSize = null)
    : RecurrentLayer(hiddenSize, returnSequences, gates: 1, inputSize)
{
    protected override string KindName => "RNN";

    protected override void FoldBias(Span<float> bias) =>
        TensorPrimitives.Add(BiasIh.Value.Span, BiasHh.Value.Span, bias);

    protected override void EnsureCellCaches(int steps, int batch) { }

    // One gate: the step's (B,H) block is contiguous, so tanh runs over it in one call.
    protected override void StepForward(int t, int batch)
    {
        int n = batch * H;
        var block = Gt.AsSpan(t * n, n);
        ProjectStep(t, batch, block);
        GateMath.Tanh(block, block);
        for (int i = 0; i < batch; i++) block.Slice(i * H, H).CopyTo(HiddenRow(t + 1, batch, i));
    }

    // da = dh·(1 − h²), over the whole (B,H) block; mul/sub only, so any vector width gives the same bits.
    protected override void StepBackward(int t, int batch)
    {
        int n = batch * H, w = Vector<float>.Count, j = 0;
        var g = Gt.AsSpan(t * n, n);
        var dh = Dh.AsSpan(0, n);
        for (; j <= n - w; j += w)
        {
            var vh = new Vector<float>(g[j..]);
            (new Vector<float>(dh[j..]) * (Vector<float>.One - vh * vh)).CopyTo(g[j..]);
        }
        for (; j < n; j++) g[j] = dh[j] * (1f - g[j] * g[j]);
    }
}
