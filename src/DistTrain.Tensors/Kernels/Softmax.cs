// Row softmax, log-softmax, softmax backward and the fused softmax-cross-entropy backward over
// x (rows, cols), row-major. exp is FastExp and row sums are Reductions.SumFixed, so results are the
// same bits on every SIMD path and machine. Naive double-precision oracle: SoftmaxReference.
using System.Numerics.Tensors;
using DistTrain.Tensors.Kernels.Operators;

namespace DistTrain.Tensors.Kernels;

public static class Softmax
{
    /// <summary>y[r] = exp(x[r] − max) / Σ exp(x[r] − max). y may be x (in place).</summary>
    public static void Forward(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        Check(x.Length, "x", rows, cols); Check(y.Length, "y", rows, cols);
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * cols, cols); var yr = y.Slice(r * cols, cols);
            if (cols == 0) continue;
            float max = TensorPrimitives.Max(xr);
            Elementwise.Unary(xr, yr, new ExpShiftOperator(max));
            TensorPrimitives.Divide(yr, Reductions.SumFixed(yr), yr);
        }
    }

    /// <summary>y[r] = x[r] − max − log Σ exp(x[r] − max). y must not overlap x (it holds the exps first).</summary>
    public static void LogForward(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        Check(x.Length, "x", rows, cols); Check(y.Length, "y", rows, cols);
        if (x.Overlaps(y)) throw new ArgumentException("Log-softmax: y overlaps x; use a separate output buffer.", nameof(y));
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * cols, cols); var yr = y.Slice(r * cols, cols);
            if (cols == 0) continue;
            float max = TensorPrimitives.Max(xr);
            Elementwise.Unary(xr, yr, new ExpShiftOperator(max));
            float logSum = MathF.Log(Reductions.SumFixed(yr));
            TensorPrimitives.Subtract(xr, max, yr);
            TensorPrimitives.Subtract(yr, logSum, yr);
        }
    }

    /// <summary>dx[r] = y[r] ⊙ (dy[r] − ⟨dy[r], y[r]⟩) from the softmax output y.</summary>
    public static void Backward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int rows, int cols)
    {
        Check(y.Length, "y", rows, cols); Check(dy.Length, "dy", rows, cols); Check(dx.Length, "dx", rows, cols);
        for (int r = 0; r < rows; r++)
        {
            var yr = y.Slice(r * cols, cols); var dyr = dy.Slice(r * cols, cols); var dxr = dx.Slice(r * cols, cols);
            float dot = Reductions.DotFixed(dyr, yr);
            TensorPrimitives.Subtract(dyr, dot, dxr);
            TensorPrimitives.Multiply(dxr, yr, dxr);
        }
    }

    /// <summary>
    /// Fused softmax + cross-entropy: dlogits = scale·(softmax(logits) − onehot(labels)); returns the
    /// summed loss Σ_r −log softmax(logits[r])[label r] (rows in order). dlogits may be logits (in place).
    /// </summary>
    public static float CrossEntropyBackward(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, Span<float> dlogits,
        int rows, int cols, float scale)
    {
        Check(logits.Length, "logits", rows, cols); Check(dlogits.Length, "dlogits", rows, cols);
        if (labels.Length != rows)
            throw new ArgumentException($"Softmax cross-entropy: labels has {labels.Length} entries but logits ({rows},{cols}) has {rows} rows.", nameof(labels));
        float loss = 0f;
        for (int r = 0; r < rows; r++)
        {
            int label = labels[r];
            if ((uint)label >= (uint)cols)
                throw new ArgumentException($"Softmax cross-entropy: labels[{r}] = {label} is outside [0, {cols}).", nameof(labels));
            var xr = logits.Slice(r * cols, cols); var dr = dlogits.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(xr);
            float xl = xr[label];
            Elementwise.Unary(xr, dr, new ExpShiftOperator(max));
            float sum = Reductions.SumFixed(dr);
            loss += MathF.Log(sum) - (xl - max);
            TensorPrimitives.Multiply(dr, scale / sum, dr);
            dr[label] -= scale;
        }
        return loss;
    }

    private static void Check(int length, string name, int rows, int cols)
    {
        if (rows < 0 || cols < 0)
            throw new ArgumentException($"Softmax: (rows,cols)=({rows},{cols}) must be non-negative.", name);
        if (length != (long)rows * cols)
            throw new ArgumentException($"Softmax: {name} has {length} floats but (rows,cols)=({rows},{cols}) needs {(long)rows * cols}.", name);
    }
}
