// Naive double-precision softmax, log-softmax and softmax cross-entropy: the oracle of Softmax.cs.
namespace DistTrain.Tensors.Kernels;

public static class SoftmaxReference
{
    public static void Forward(ReadOnlySpan<float> x, Span<float> y, int rows, int cols, bool log = false)
    {
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < cols; j++) max = Math.Max(max, x[r * cols + j]);
            for (int j = 0; j < cols; j++) sum += Math.Exp(x[r * cols + j] - max);
            for (int j = 0; j < cols; j++)
                y[r * cols + j] = (float)(log ? x[r * cols + j] - max - Math.Log(sum) : Math.Exp(x[r * cols + j] - max) / sum);
        }
    }

    public static float CrossEntropyBackward(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, Span<float> dlogits, int rows, int cols, float scale)
    {
        Forward(logits, dlogits, rows, cols, log: true);
        double loss = 0;
        for (int r = 0; r < rows; r++)
        {
            loss -= dlogits[r * cols + labels[r]];
            for (int j = 0; j < cols; j++)
                dlogits[r * cols + j] = (float)(scale * (Math.Exp(dlogits[r * cols + j]) - (j == labels[r] ? 1 : 0)));
        }
        return (float)loss;
    }
}
