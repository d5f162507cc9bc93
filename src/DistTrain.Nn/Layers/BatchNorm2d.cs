// BatchNorm2d: batch normalization of x (B, C, H, W) per channel; see BatchNormBase.
namespace DistTrain.Nn.Layers;

public sealed class BatchNorm2d(int? numFeatures = null, float eps = 1e-5f, float momentum = 0.1f)
    : BatchNormBase(numFeatures, eps, momentum)
{
    protected override bool AcceptsRank(int rank) => rank == 3;
    protected override string ExpectedShape => "(C,H,W) per sample";
}
