// The perceptron criterion (Rosenblatt; Bishop PRML 4.1.7): one score s = w·x + b per sample, labels 0/1 read as
// y = −1/+1, loss_i = max(0, −y·s). Prediction is the step activation: class 1 when s > 0. Its gradient is −y·x on
// a mistake (y·s ≤ 0 — a tie counts, so training can start from w = 0) and 0 otherwise: SGD on it with rate 1 and
// batch 1 is Rosenblatt's rule w ← w + y·x, applied only on mistakes. dOutput = scale · (−y) on a mistake.
using DistTrain.Tensors;

namespace DistTrain.Nn.Losses;

public sealed class PerceptronCriterion : Loss
{
    public override double Compute(Tensor output, ReadOnlySpan<int> labels, Tensor? targets, Tensor dOutput, float scale)
    {
        int b = output.Dim(0);
        if (output.Length != b)
            throw new ArgumentException($"PerceptronCriterion: the perceptron gives one score per sample, but the output is {output}; end the model with {{\"type\":\"dense\",\"out\":1}}.", nameof(output));
        if (labels.Length != b) throw new ArgumentException($"PerceptronCriterion: {labels.Length} labels for a batch of {b}.", nameof(labels));
        if (!dOutput.SameShape(output))
            throw new ArgumentException($"PerceptronCriterion: dOutput {dOutput} does not match the output {output}.", nameof(dOutput));
        var s = output.Span; var d = dOutput.Span;
        double total = 0;
        for (int i = 0; i < b; i++)
        {
            int l = labels[i];
            if (l is not (0 or 1)) throw new ArgumentException($"PerceptronCriterion: label {l} of sample {i} must be 0 or 1.", nameof(labels));
            float y = l == 1 ? 1f : -1f, margin = y * s[i];
            d[i] = margin <= 0f ? -y * scale : 0f;
            total += Math.Max(0.0, -(double)margin);
        }
        return total;
    }

    /// <summary>Samples of the last batch with y·s ≤ 0 (the updates Rosenblatt's rule makes), from a dOutput Compute wrote.</summary>
    public static int Mistakes(Tensor dOutput)
    {
        int n = 0;
        foreach (var g in dOutput.Span) if (g != 0f) n++;
        return n;
    }

    public override string ToString() => "PerceptronCriterion()";
}
