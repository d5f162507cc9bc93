// Global L2 norm of the flat gradient and clipping by it (PyTorch clip_grad_norm_). The sum of
// squares runs in one fixed order in double, so the result does not depend on threads or SIMD width.
namespace DistTrain.Nn.Training;

public static class GradientNorm
{
    /// <summary>‖g‖₂ over the whole span, accumulated in double in index order.</summary>
    public static double Global(ReadOnlySpan<float> g)
    {
        double s = 0;
        foreach (var v in g) s += (double)v * v;
        return Math.Sqrt(s);
    }

    /// <summary>Scales g by maxNorm/‖g‖ when ‖g‖ > maxNorm (maxNorm 0 = only measure). Returns ‖g‖ before clipping.</summary>
    public static double ClipByGlobalNorm(Span<float> g, float maxNorm)
    {
        if (maxNorm <= 0) return double.NaN;
        double norm = Global(g);
        if (norm > maxNorm)
        {
            float k = (float)(maxNorm / (norm + 1e-6));
            foreach (ref var v in g) v *= k;
        }
        return norm;
    }
}
