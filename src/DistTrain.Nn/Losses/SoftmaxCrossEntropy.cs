// Softmax cross-entropy on logits, fused (PyTorch nn.CrossEntropyLoss): loss_i = logsumexp(z_i) − z_i[label_i],
// computed stably as m + log Σ exp(z − m); dz = scale · (softmax(z) − onehot). With soft targets (B,K)
// instead of labels: loss_i = −Σ_k t_ik log softmax(z_i)_k, dz = scale · (softmax(z)·Σ_k t_ik − t).
// Letters: B samples, K classes. output (B,K), labels (B) in [0,K). A many-to-many output (B,T,K) is
// read as B·T rows with B·T labels (row-major), and the returned sum is over rows.
// Label smoothing ε (PyTorch's label_smoothing): the target is (1 − ε)·onehot + ε/K (soft targets t become
// (1 − ε)·t + ε/K), so loss_i = lse − (1 − ε)·z_label − (ε/K)·Σ_k z_k and dz = scale · (softmax − target).
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using DistTrain.Tensors;

namespace DistTrain.Nn.Losses;

public sealed class SoftmaxCrossEntropy : Loss
{
    /// <param name="labelSmoothing">ε in [0, 1): the share of the target spread evenly over the K classes.</param>
    public SoftmaxCrossEntropy(float labelSmoothing = 0f)
    {
        if (!(labelSmoothing >= 0f && labelSmoothing < 1f))
            throw new ArgumentException($"SoftmaxCrossEntropy: label smoothing {labelSmoothing} is outside [0, 1); 0.1 is usual, 0 turns it off.", nameof(labelSmoothing));
        LabelSmoothing = labelSmoothing;
    }

    public float LabelSmoothing { get; }

    public override double Compute(Tensor output, ReadOnlySpan<int> labels, Tensor? targets, Tensor dOutput, float scale)
    {
        if (output.Rank < 2 || output.Dim(-1) == 0)
            throw new ArgumentException($"SoftmaxCrossEntropy needs logits (B,K) or (B,...,K); got {output}.", nameof(output));
        int k = output.Dim(-1), b = output.Length / k;
        // Checked by hand: RequireShape's params array would allocate on every step.
        if (!dOutput.SameShape(output))
            throw new ArgumentException($"SoftmaxCrossEntropy: dOutput {dOutput} does not match the logits {output}.", nameof(dOutput));
        if (targets is null)
        {
            if (labels.Length != b)
                throw new ArgumentException($"SoftmaxCrossEntropy: {labels.Length} labels for {b} rows of logits {output}; give one label per row.", nameof(labels));
        }
        else if (!targets.SameShape(output))
            throw new ArgumentException($"SoftmaxCrossEntropy: targets {targets} do not match the logits {output}.", nameof(targets));

        var z = output.Span; var d = dOutput.Span;
        double total = 0;
        for (int i = 0; i < b; i++)
        {
            var zi = z.Slice(i * k, k); var di = d.Slice(i * k, k);
            float m = TensorPrimitives.Max(zi);
            TensorPrimitives.Subtract(zi, m, di);
            TensorPrimitives.Exp(di, di);
            float sum = Layers.Elementwise.Sum(di);
            double lse = m + Math.Log(sum);
            float eps = LabelSmoothing, uniform = eps / k, keep = 1f - eps;
            if (targets is null)
            {
                int label = labels[i];
                if ((uint)label >= (uint)k)
                    throw new ArgumentException($"SoftmaxCrossEntropy: label {label} of sample {i} is outside [0, {k}); check the dataset's labels and the model's output size.", nameof(labels));
                TensorPrimitives.Multiply(di, scale / sum, di);
                if (eps == 0f)
                {
                    total += lse - zi[label];
                    di[label] -= scale;
                }
                else
                {
                    double zsum = 0;
                    for (int c = 0; c < k; c++) zsum += zi[c];
                    total += lse - keep * (double)zi[label] - uniform * zsum;
                    TensorPrimitives.Subtract(di, scale * uniform, di);
                    di[label] -= scale * keep;
                }
            }
            else
            {
                var ti = targets.Span.Slice(i * k, k);
                float tsum = keep * Layers.Elementwise.Sum(ti) + eps;
                for (int c = 0; c < k; c++) total += (keep * ti[c] + uniform) * (lse - zi[c]);
                TensorPrimitives.Multiply(di, scale * tsum / sum, di);
                for (int c = 0; c < k; c++) di[c] -= scale * (keep * ti[c] + uniform);
            }
        }
        return total;
    }

    public override string ToString() => LabelSmoothing == 0f ? "SoftmaxCrossEntropy()" : $"SoftmaxCrossEntropy(label_smoothing={LabelSmoothing})";
}
