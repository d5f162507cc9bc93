// How a classifier sees a set of images, the "inception score" of Salimans et al. (2016) with our own classifier in
// place of Inception: with p(y|x) its softmax per image and p(y) = mean over the set,
//   IS = exp( mean_x KL(p(y|x) ‖ p(y)) ) = exp( H(p(y)) − mean_x H(p(y|x)) ),
// high when each image is confidently one class and the classes are spread evenly (K at best, 1 at worst). Beside it:
// the mean top-class probability, and the share of images whose top class is each class (mode collapse shows as a
// class that is missing or swamps the rest). Sums in double, in sample order.
using DistTrain.Nn.Models;

namespace DistTrain.Nn.Evaluation;

/// <param name="InceptionScore">exp(mean KL(p(y|x) ‖ p(y))), in [1, K].</param>
/// <param name="MeanConfidence">Mean over images of max_y p(y|x).</param>
/// <param name="ClassShare">Per class, the share of images whose top class it is (sums to 1).</param>
/// <param name="MarginalEntropy">H(p(y)) in nats.</param>
/// <param name="ConditionalEntropy">Mean over images of H(p(y|x)) in nats.</param>
public sealed record ClassifierScore(double InceptionScore, double MeanConfidence, double[] ClassShare, double MarginalEntropy, double ConditionalEntropy, int Count)
{
    /// <summary>The score of <paramref name="count"/> images laid out one after another in <paramref name="images"/>, under
    /// <paramref name="classifier"/> (run in evaluation mode; its outputs are logits over K classes).</summary>
    public static ClassifierScore Of(Sequential classifier, ReadOnlySpan<float> images, int count)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        if (classifier.OutputShape.Length != 1 || classifier.OutputShape[0] < 2)
            throw new ArgumentException($"The classifier gives {DistTrain.Tensors.Tensor.ShapeString(classifier.OutputShape)}; a score needs logits over K ≥ 2 classes (K).");
        var logits = Predictions.Outputs(classifier, images, count);
        int k = classifier.OutputShape[0];
        var p = new double[logits.Length];
        for (int i = 0; i < count; i++)
        {
            var row = logits.AsSpan(i * k, k);
            double max = double.NegativeInfinity, sum = 0;
            foreach (var v in row) max = Math.Max(max, v);
            for (int j = 0; j < k; j++) sum += p[i * k + j] = Math.Exp(row[j] - max);
            for (int j = 0; j < k; j++) p[i * k + j] /= sum;
        }
        return FromProbabilities(p, count, k);
    }

    /// <summary>The score of given class probabilities (N rows of K, each summing to 1).</summary>
    public static ClassifierScore FromProbabilities(ReadOnlySpan<double> p, int count, int classes)
    {
        if (count < 1 || classes < 2 || p.Length != count * classes)
            throw new ArgumentException($"{p.Length} probabilities are not {count} ≥ 1 rows of {classes} ≥ 2 classes.");
        var marginal = new double[classes];
        var share = new double[classes];
        double confidence = 0;
        for (int i = 0; i < count; i++)
        {
            var row = p.Slice(i * classes, classes);
            int top = 0;
            for (int j = 0; j < classes; j++)
            {
                marginal[j] += row[j];
                if (row[j] > row[top]) top = j;
            }
            share[top] += 1;
            confidence += row[top];
        }
        for (int j = 0; j < classes; j++) { marginal[j] /= count; share[j] /= count; }
        double kl = 0, conditional = 0;
        for (int i = 0; i < count; i++)
            for (int j = 0; j < classes; j++)
            {
                double q = p[i * classes + j];
                if (q > 0) { kl += q * (Math.Log(q) - Math.Log(marginal[j])); conditional -= q * Math.Log(q); }
            }
        double h = 0;
        foreach (var m in marginal) if (m > 0) h -= m * Math.Log(m);
        return new ClassifierScore(Math.Exp(kl / count), confidence / count, share, h, conditional / count, count);
    }
}
