// An in-memory labelled dataset: N samples of one shape, float features, int labels (and, for
// regression / autoencoders, optional float targets). Every source (IDX, CSV, synthetic) yields one.
using DistTrain.Tensors;

namespace DistTrain.Data;

public sealed class Dataset
{
    public Dataset(string name, int[] sampleShape, float[] features, int[] labels, int classes, float[]? targets = null)
    {
        SampleLength = 1;
        foreach (var d in sampleShape) SampleLength *= d;
        if (features.Length != labels.Length * SampleLength)
            throw new ArgumentException($"Dataset {name}: {features.Length} feature values for {labels.Length} samples of shape {Tensor.ShapeString(sampleShape)}.");
        Name = name; SampleShape = sampleShape; Features = features; Labels = labels; Classes = classes; Targets = targets;
    }

    public string Name { get; }
    public int[] SampleShape { get; }
    public int SampleLength { get; }
    public float[] Features { get; }
    public int[] Labels { get; }
    public int Classes { get; }
    /// <summary>Per-sample float targets (length Count × TargetLength) for regression, else null.</summary>
    public float[]? Targets { get; }
    public int Count => Labels.Length;

    /// <summary>Copies the samples at <paramref name="indices"/> into x (B, ...SampleShape) and labels.</summary>
    public void Gather(ReadOnlySpan<int> indices, Tensor x, Span<int> labels)
    {
        if (x.Length < indices.Length * SampleLength)
            throw new ArgumentException($"Batch tensor {x} is too small for {indices.Length} samples of {SampleLength} values.", nameof(x));
        var dst = x.Span;
        for (int i = 0; i < indices.Length; i++)
        {
            int s = indices[i];
            Features.AsSpan(s * SampleLength, SampleLength).CopyTo(dst.Slice(i * SampleLength, SampleLength));
            labels[i] = Labels[s];
        }
    }
}
