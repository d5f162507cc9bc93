// Writes u8 IDX image and label files (plain or gzip): for tests and tools that need a small
// MNIST-layout dataset of their own. The byte layout is the one IdxReader reads.
using System.Buffers.Binary;
using System.IO.Compression;

namespace DistTrain.Data.Sources;

public static class IdxWriter
{
    /// <summary>Writes pixels (count × rows × cols bytes, row-major) as an IDX images file.</summary>
    public static void WriteImages(string path, ReadOnlySpan<byte> pixels, int count, int rows, int cols, bool gzip = false)
    {
        if (count < 0 || rows < 1 || cols < 1 || pixels.Length != (long)count * rows * cols)
            throw new ArgumentException($"{pixels.Length} pixel bytes do not make {count} images of {rows}×{cols}.", nameof(pixels));
        Write(path, IdxReader.ImagesMagic, [count, rows, cols], pixels, gzip);
    }

    public static void WriteLabels(string path, ReadOnlySpan<byte> labels, bool gzip = false)
        => Write(path, IdxReader.LabelsMagic, [labels.Length], labels, gzip);

    /// <summary>Writes a Dataset of (1, rows, cols) samples with features in [0,1] back to an image
    /// file and a label file (pixels rounded to the nearest byte).</summary>
    public static void WriteDataset(Dataset data, string imagesPath, string labelsPath, bool gzip = false)
    {
        var shape = data.SampleShape;
        int rows = shape.Length >= 2 ? shape[^2] : 1, cols = shape[^1];
        if (rows * cols != data.SampleLength)
            throw new ArgumentException($"Dataset {data.Name} has sample shape ({string.Join(",", shape)}), not one image.", nameof(data));
        var px = new byte[data.Features.Length];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)Math.Clamp(MathF.Round(data.Features[i] * 255f), 0f, 255f);
        var lb = new byte[data.Count];
        for (int i = 0; i < lb.Length; i++)
            lb[i] = data.Labels[i] is >= 0 and <= 255 ? (byte)data.Labels[i]
                : throw new ArgumentException($"Label {data.Labels[i]} does not fit in an IDX u8 label.", nameof(data));
        WriteImages(imagesPath, px, data.Count, rows, cols, gzip);
        WriteLabels(labelsPath, lb, gzip);
    }

    static void Write(string path, int magic, int[] dims, ReadOnlySpan<byte> data, bool gzip)
    {
        using var file = File.Create(path);
        using Stream s = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file;
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, magic);
        s.Write(word);
        foreach (var d in dims) { BinaryPrimitives.WriteInt32BigEndian(word, d); s.Write(word); }
        s.Write(data);
    }
}
