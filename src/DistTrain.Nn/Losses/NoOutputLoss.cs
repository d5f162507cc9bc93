// The `none` loss: the output contributes nothing (loss 0, dOutput 0); the objective is the layers' added terms alone
// (Layer.AddedLoss: an RBM's contrastive divergence). Treated as comparing with target values, so the trainer counts
// no accuracy; it needs none of them.
using DistTrain.Tensors;

namespace DistTrain.Nn.Losses;

public sealed class NoOutputLoss : Loss
{
    public override bool ComparesWithTargets => true;

    public override double Compute(Tensor output, ReadOnlySpan<int> labels, Tensor? targets, Tensor dOutput, float scale)
    {
        if (!dOutput.SameShape(output))
            throw new ArgumentException($"NoOutputLoss: dOutput {dOutput} does not match the output {output}.", nameof(dOutput));
        dOutput.Clear();
        return 0;
    }

    public override string ToString() => "NoOutputLoss()";
}
