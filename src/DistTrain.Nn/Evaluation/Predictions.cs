// Runs a model over many samples in eval mode (dropout off, BatchNorm running statistics), in fixed
// batches, and returns its outputs or its argmax classes: what eval's confusion matrix and predict use.
using DistTrain.Nn.Models;
using DistTrain.Tensors;

namespace DistTrain.Nn.Evaluation;

public static class Predictions
{
    /// <summary>Model outputs (N, ...OutputShape) for <paramref name="count"/> samples laid out one after another in <paramref name="features"/>.</summary>
    public static float[] Outputs(Sequential model, ReadOnlySpan<float> features, int count, int batch = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        int inLen = Length(model.InputShape), outLen = Length(model.OutputShape);
        if (features.Length != count * inLen)
            throw new ArgumentException($"{features.Length} input values are not {count} samples of {Tensor.ShapeString(model.InputShape)} ({inLen} values each).");
        var result = new float[count * outLen];
        Tensor? x = null;
        for (int start = 0; start < count; start += batch)
        {
            int b = Math.Min(batch, count - start);
            if (x is null || x.Dim(0) != b) x = new Tensor([b, .. model.InputShape]);
            features.Slice(start * inLen, b * inLen).CopyTo(x.Span);
            var y = model.Forward(x, StepContext.Eval);
            y.Span[..(b * outLen)].CopyTo(result.AsSpan(start * outLen, b * outLen));
        }
        return result;
    }

    /// <summary>The index of the largest output per sample (the first one on ties), for a classifier with (K) outputs.</summary>
    public static int[] Classes(Sequential model, ReadOnlySpan<float> features, int count, int batch = 256)
    {
        var outputs = Outputs(model, features, count, batch);
        int k = Length(model.OutputShape);
        var pred = new int[count];
        for (int s = 0; s < count; s++) pred[s] = ArgMax(outputs.AsSpan(s * k, k));
        return pred;
    }

    public static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    static int Length(int[] shape)
    {
        int n = 1;
        foreach (var d in shape) n *= d;
        return n;
    }
}
