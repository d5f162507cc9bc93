// Mean squared error (PyTorch nn.MSELoss(reduction='mean') when the caller divides by B): per-sample
// loss_i = (1/F) Σ_f (y_if − t_if)², so Σ_i loss_i / B equals torch's mean over all B·F elements.
// dy = scale · 2(y − t)/F. Letters: B samples, F features per sample. output and targets (B, ...).
// With Sum set a sample's loss is the sum over its F elements instead (PyTorch's 'sum' divided by B).
using DistTrain.Tensors;

namespace DistTrain.Nn.Losses;

public sealed class MeanSquaredError(bool sum = false) : Loss
{
    /// <summary>Per-sample loss summed over the sample's elements rather than averaged.</summary>
    public bool Sum { get; } = sum;

    public override bool ComparesWithTargets => true;

    public override double Compute(Tensor output, ReadOnlySpan<int> labels, Tensor? targets, Tensor dOutput, float scale)
    {
        if (targets is null) throw new ArgumentException("MeanSquaredError needs a targets tensor shaped like the model output.", nameof(targets));
        if (!targets.SameShape(output))
            throw new ArgumentException($"MeanSquaredError: targets {targets} do not match the output {output}.", nameof(targets));
        if (!dOutput.SameShape(output))
            throw new ArgumentException($"MeanSquaredError: dOutput {dOutput} does not match the output {output}.", nameof(dOutput));
        int b = output.Dim(0), f = output.Length / Math.Max(b, 1);
        var y = output.Span; var t = targets.Span; var d = dOutput.Span;
        float g = Sum ? scale * 2f : scale * 2f / f;
        double total = 0;
        for (int i = 0; i < b; i++)
        {
            double s = 0;
            for (int j = i * f, end = j + f; j < end; j++)
            {
                float e = y[j] - t[j];
                s += (double)e * e;
                d[j] = g * e;
            }
            total += Sum ? s : s / f;
        }
        return total;
    }

    public override string ToString() => Sum ? "MeanSquaredError(reduction=sum)" : "MeanSquaredError()";
}
