// AdamW in PyTorch's form: decoupled weight decay p *= 1 − lr·wd, then the Adam update without L2.
// PyTorch's default weight_decay for AdamW is 0.01. State: exp_avg, exp_avg_sq.
namespace DistTrain.Nn.Optimizers;

public sealed class AdamW : Adam
{
    public AdamW(int length, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0.01f)
        : base(length, beta1, beta2, eps, weightDecay, decoupled: true) { }

    public override string ToString() => $"AdamW(beta1={Beta1}, beta2={Beta2}, eps={Eps}, weight_decay={WeightDecay})";
}
