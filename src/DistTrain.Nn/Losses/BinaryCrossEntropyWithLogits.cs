// Binary cross-entropy on logits (PyTorch nn.BCEWithLogitsLoss): per element
// ℓ = max(z,0) − z·t + log(1 + e^−|z|) (stable), per-sample loss_i = mean over its F elements, so
// Σ_i loss_i / B equals torch's 'mean'. dz = scale · (σ(z) − t)/F. Targets in [0,1] as a tensor shaped
// like the output, or labels 0/1 (one per sample) when each sample has one logit (output (B) or (B,1)).
// Sum: a sample's loss is the sum over its elements (PyTorch's 'sum' divided by B: a VAE's nats per image).
// CompareWithTargets: the trainer passes target values (the input itself for an autoencoder), never labels.
using DistTrain.Tensors;

namespace DistTrain.Nn.Losses;

public sealed class BinaryCrossEntropyWithLogits(bool sum = false, bool compareWithTargets = false) : Loss
{
    /// <summary>Per-sample loss summed over the sample's elements rather than averaged.</summary>
    public bool Sum { get; } = sum;

    public override bool ComparesWithTargets { get; } = compareWithTargets;

    public override double Compute(Tensor output, ReadOnlySpan<int> labels, Tensor? targets, Tensor dOutput, float scale)
    {
        if (!dOutput.SameShape(output))
            throw new ArgumentException($"BinaryCrossEntropyWithLogits: dOutput {dOutput} does not match the output {output}.", nameof(dOutput));
        int b = output.Dim(0), f = output.Length / Math.Max(b, 1);
        if (targets is not null)
        {
            if (!targets.SameShape(output))
                throw new ArgumentException($"BinaryCrossEntropyWithLogits: targets {targets} do not match the output {output}.", nameof(targets));
        }
        else
        {
            if (ComparesWithTargets)
                throw new ArgumentException("BinaryCrossEntropyWithLogits compares with target values, but none were given.", nameof(targets));
            if (f != 1) throw new ArgumentException($"BinaryCrossEntropyWithLogits: labels need one logit per sample, but the output is {output}; pass a targets tensor instead.", nameof(labels));
            if (labels.Length != b) throw new ArgumentException($"BinaryCrossEntropyWithLogits: {labels.Length} labels for a batch of {b}.", nameof(labels));
        }
        var z = output.Span; var d = dOutput.Span;
        float g = Sum ? scale : scale / f;
        double total = 0;
        for (int i = 0; i < b; i++)
        {
            double s = 0;
            for (int j = i * f, end = j + f; j < end; j++)
            {
                float t;
                if (targets is not null) t = targets.Span[j];
                else
                {
                    int l = labels[i];
                    if (l is not (0 or 1)) throw new ArgumentException($"BinaryCrossEntropyWithLogits: label {l} of sample {i} must be 0 or 1.", nameof(labels));
                    t = l;
                }
                float zj = z[j];
                s += Math.Max(zj, 0.0) - (double)zj * t + Math.Log(1.0 + Math.Exp(-Math.Abs((double)zj)));
                float sig = zj >= 0 ? 1f / (1f + MathF.Exp(-zj)) : MathF.Exp(zj) / (1f + MathF.Exp(zj));
                d[j] = g * (sig - t);
            }
            total += Sum ? s : s / f;
        }
        return total;
    }

    public override string ToString() =>
        $"BinaryCrossEntropyWithLogits({(Sum ? "reduction=sum" : "")}{(Sum && ComparesWithTargets ? ", " : "")}{(ComparesWithTargets ? "target=values" : "")})";
}
