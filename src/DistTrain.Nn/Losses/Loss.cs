// Loss contract. output (B, ...) from the model; labels (B) for classification, targets (B, ...) for
// regression. Writes dOutput = scale · ∂(Σ_i loss_i)/∂output and returns Σ_i loss_i (in double).
// A micro-batch passes scale = 1/globalBatch so the PS's sum of micro-batch gradients is the global mean.
using DistTrain.Tensors;

namespace DistTrain.Nn.Losses;

public abstract class Loss
{
    public abstract double Compute(Tensor output, ReadOnlySpan<int> labels, Tensor? targets, Tensor dOutput, float scale);
    /// <summary>True when the loss compares the output with target values (the dataset's, or the input itself when it
    /// has none: an autoencoder) rather than with class labels.</summary>
    public virtual bool ComparesWithTargets => false;

    public abstract override string ToString();
}
