// Independent double-precision re-implementations of PyTorch's optimizer formulas (torch.optim docs,
// written in the textbook form, e.g. Adam with m̂ = m/(1−β1^t)), the oracle for OptimizerTests.
namespace DistTrain.Nn.Tests.Optimizers;

internal abstract class RefOptimizer(int n)
{
    protected readonly double[] A = new double[n], B = new double[n];
    public abstract void Step(double[] p, double[] g, double lr, long t);
    public virtual double[][] State => [A, B];
}

internal sealed class RefSgd(int n, double wd) : RefOptimizer(n)
{
    public override double[][] State => [];
    public override void Step(double[] p, double[] g, double lr, long t)
    {
        for (int i = 0; i < p.Length; i++) p[i] -= lr * (g[i] + wd * p[i]);
    }
}

internal sealed class RefMomentum(int n, double beta, bool ema, bool nesterov, double wd) : RefOptimizer(n)
{
    public override double[][] State => [A];
    public override void Step(double[] p, double[] g, double lr, long t)
    {
        for (int i = 0; i < p.Length; i++)
        {
            var gi = g[i] + wd * p[i];
            A[i] = ema ? beta * A[i] + (1 - beta) * gi : beta * A[i] + gi;
            p[i] -= lr * (nesterov ? gi + beta * A[i] : A[i]);
        }
    }
}

internal sealed class RefAdagrad(int n, double eps, double lrDecay, double init, double wd) : RefOptimizer(n)
{
    private bool _started;
    public override double[][] State => [A];
    public override void Step(double[] p, double[] g, double lr, long t)
    {
        if (!_started) { Array.Fill(A, init); _started = true; }
        var clr = lr / (1 + (t - 1) * lrDecay);
        for (int i = 0; i < p.Length; i++)
        {
            var gi = g[i] + wd * p[i];
            A[i] += gi * gi;
            p[i] -= clr * gi / (Math.Sqrt(A[i]) + eps);
        }
    }
}

internal sealed class RefRmsProp(int n, double alpha, double eps, double wd) : RefOptimizer(n)
{
    public override double[][] State => [A];
    public override void Step(double[] p, double[] g, double lr, long t)
    {
        for (int i = 0; i < p.Length; i++)
        {
            var gi = g[i] + wd * p[i];
            A[i] = alpha * A[i] + (1 - alpha) * gi * gi;
            p[i] -= lr * gi / (Math.Sqrt(A[i]) + eps);
        }
    }
}

internal sealed class RefAdam(int n, double b1, double b2, double eps, double wd, bool decoupled) : RefOptimizer(n)
{
    public override void Step(double[] p, double[] g, double lr, long t)
    {
        for (int i = 0; i < p.Length; i++)
        {
            if (decoupled) p[i] *= 1 - lr * wd;
            var gi = decoupled ? g[i] : g[i] + wd * p[i];
            A[i] = b1 * A[i] + (1 - b1) * gi;
            B[i] = b2 * B[i] + (1 - b2) * gi * gi;
            var mHat = A[i] / (1 - Math.Pow(b1, t));
            var vHat = B[i] / (1 - Math.Pow(b2, t));
            p[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
        }
    }
}
