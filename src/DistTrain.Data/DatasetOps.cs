// Cheap views and checks on a Dataset that every source shares: reshape/flatten (no copy), subsets,
// a class-count override, and a SHA-256 fingerprint so nodes can prove they hold the same data.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DistTrain.Tensors;

namespace DistTrain.Data;

public static class DatasetOps
{
    /// <summary>The same samples (arrays shared) seen with another sample shape of equal length,
    /// e.g. (1,28,28) → (784) for an MLP or (28,28) for an RNN reading rows.</summary>
    public static Dataset WithSampleShape(this Dataset data, params int[] sampleShape)
    {
        long length = 1;
        foreach (var d in sampleShape)
        {
            if (d < 1) throw new ArgumentException($"Sample shape {Tensor.ShapeString(sampleShape)} has a dimension below 1.", nameof(sampleShape));
            length *= d;
        }
        if (length != data.SampleLength)
            throw new ArgumentException(
                $"Dataset {data.Name}: samples of shape {Tensor.ShapeString(data.SampleShape)} ({data.SampleLength} values) cannot be seen as {Tensor.ShapeString(sampleShape)} ({length} values).",
                nameof(sampleShape));
        return new Dataset(data.Name, (int[])sampleShape.Clone(), data.Features, data.Labels, data.Classes, data.Targets);
    }

    /// <summary>Samples as flat vectors (SampleLength).</summary>
    public static Dataset Flattened(this Dataset data) => data.WithSampleShape(data.SampleLength);

    /// <summary>The same samples declared with <paramref name="classes"/> classes (≥ max label + 1).</summary>
    public static Dataset WithClasses(this Dataset data, int classes)
    {
        foreach (var l in data.Labels)
            if (l >= classes)
                throw new ArgumentException($"Dataset {data.Name} has label {l}, out of range for {classes} classes.", nameof(classes));
        return new Dataset(data.Name, data.SampleShape, data.Features, data.Labels, classes, data.Targets);
    }

    /// <summary>A copy of the samples at <paramref name="indices"/>, in that order.</summary>
    public static Dataset Subset(this Dataset data, ReadOnlySpan<int> indices, string? name = null)
    {
        int f = data.SampleLength;
        var x = new float[indices.Length * f];
        var y = new int[indices.Length];
        int tl = data.Targets is null ? 0 : data.Targets.Length / Math.Max(1, data.Count);
        var t = data.Targets is null ? null : new float[indices.Length * tl];
        for (int i = 0; i < indices.Length; i++)
        {
            int s = indices[i];
            if ((uint)s >= (uint)data.Count)
                throw new ArgumentOutOfRangeException(nameof(indices), s, $"Sample index out of range for {data.Name} with {data.Count} samples.");
            data.Features.AsSpan(s * f, f).CopyTo(x.AsSpan(i * f, f));
            y[i] = data.Labels[s];
            if (t is not null) data.Targets!.AsSpan(s * tl, tl).CopyTo(t.AsSpan(i * tl, tl));
        }
        return new Dataset(name ?? data.Name, data.SampleShape, x, y, data.Classes, t);
    }

    /// <summary>SHA-256 (lower-case hex) of the sample shape, class count, labels, features and
    /// targets as little-endian bytes: equal on two nodes iff they hold bit-identical data.</summary>
    public static string Fingerprint(this Dataset data)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var word = new byte[4];
        void Int(int v) { BinaryPrimitives.WriteInt32LittleEndian(word, v); h.AppendData(word); }
        Int(data.SampleShape.Length);
        foreach (var d in data.SampleShape) Int(d);
        Int(data.Classes);
        Int(data.Count);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Fingerprint assumes a little-endian machine.");
        h.AppendData(MemoryMarshal.AsBytes(data.Labels.AsSpan()));
        h.AppendData(MemoryMarshal.AsBytes(data.Features.AsSpan()));
        if (data.Targets is not null) h.AppendData(MemoryMarshal.AsBytes(data.Targets.AsSpan()));
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }
}
