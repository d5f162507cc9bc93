// BatchNorm1d: batch normalization of x (B, F) per feature, or of x (B, C, L) per channel; see BatchNormBase.
namespace DistTrain.Nn.Layers;

public sealed class BatchNorm1d(int? numFeatures = null, float eps = 1e-5f, float momentum = 0.1f)
    : BatchNormBase(numFeatures, eps, momentum)
{
    protected override bool AcceptsRank(int rank) => rank is 1 or 2;
    protected override string ExpectedShape => "(F) or (C,L) per sample";
}
