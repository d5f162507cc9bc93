// Reads IDX files (the MNIST / Fashion-MNIST format: big-endian magic 0x0000TTDD, DD dims of u32,
// then the data), plain or gzip (detected by the 1f 8b magic, not the name), into a Dataset.
using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics.Tensors;

namespace DistTrain.Data.Sources;

/// <summary>u8 images (N, rows, cols) as read from an IDX file.</summary>
public sealed record IdxImages(int Count, int Rows, int Cols, byte[] Pixels);

public static class IdxReader
{
    /// <summary>u8 data (type 0x08), 3 dims: images.</summary>
    public const int ImagesMagic = 0x00000803;
    /// <summary>u8 data (type 0x08), 1 dim: labels.</summary>
    public const int LabelsMagic = 0x00000801;

    public const string InstallHint =
        "Install Fashion-MNIST with `apt-get install dataset-fashion-mnist` (or run scripts/setup.sh), " +
        "or give a directory that holds the IDX files (idx:DIR or fashion-mnist:DIR)";

    /// <summary>Loads an image file and its label file into a Dataset of sample shape (1, rows, cols)
    /// (NCHW), pixels scaled to [0, 1]. Labels must lie in [0, classes).</summary>
    public static Dataset Load(string imagesPath, string labelsPath, int classes = 10, string? name = null)
    {
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "The class count must be at least 1.");
        var images = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath);
        if (labels.Length != images.Count)
            throw new DataException(labelsPath, $"holds {labels.Length} labels but {imagesPath} holds {images.Count} images",
                "Use the label file that belongs to this image file (train-* with train-*, t10k-* with t10k-*)");
        var ints = new int[labels.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= classes)
                throw new DataException(labelsPath, $"label {labels[i]} at index {i} is out of range for {classes} classes",
                    $"Check that the file is a {classes}-class label file, or set the class count to at least {labels[i] + 1}");
            ints[i] = labels[i];
        }
        // Bytes → floats exactly, then one IEEE division each: the same bits as px / 255f, vectorized.
        var features = new float[images.Pixels.Length];
        TensorPrimitives.ConvertTruncating<byte, float>(images.Pixels, features);
        TensorPrimitives.Divide(features, 255f, features);
        return new Dataset(name ?? Path.GetFileName(imagesPath), [1, images.Rows, images.Cols], features, ints, classes);
    }

    public static IdxImages ReadImages(string path)
    {
        using var stream = Open(path);
        var dims = ReadHeader(stream, path, ImagesMagic, "images (u8, 3 dims)");
        long total = (long)dims[0] * dims[1] * dims[2];
        if (total > Array.MaxLength)
            throw new DataException(path, $"header claims {dims[0]}×{dims[1]}×{dims[2]} bytes, more than fits in memory",
                "The header is corrupt: fetch the file again");
        var pixels = ReadBody(stream, path, (int)total, $"{dims[0]} images of {dims[1]}×{dims[2]}");
        return new IdxImages(dims[0], dims[1], dims[2], pixels);
    }

    /// <summary>(count, rows, cols) from an image file's header alone.</summary>
    public static (int Count, int Rows, int Cols) ReadImageHeader(string path)
    {
        using var stream = Open(path);
        var dims = ReadHeader(stream, path, ImagesMagic, "images (u8, 3 dims)");
        return (dims[0], dims[1], dims[2]);
    }

    public static byte[] ReadLabels(string path)
    {
        using var stream = Open(path);
        var dims = ReadHeader(stream, path, LabelsMagic, "labels (u8, 1 dim)");
        return ReadBody(stream, path, dims[0], $"{dims[0]} labels");
    }

    /// <summary>Opens the file, decompressing on the fly when it starts with the gzip magic 1f 8b.</summary>
    public static Stream Open(string path)
    {
        if (!File.Exists(path))
            throw new DataException(path, $"file not found (looked for {Path.GetFullPath(path)})", InstallHint);
        FileStream? file = null;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            Span<byte> magic = stackalloc byte[2];
            int n = file.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
            file.Position = 0;
            if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
                return new BufferedStream(new GZipStream(file, CompressionMode.Decompress), 1 << 16);
            return file;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            file?.Dispose();
            throw new DataException(path, $"cannot be read ({e.Message})", "Check the file's permissions and that it is a regular file", e);
        }
    }

    static int[] ReadHeader(Stream s, string path, int expectedMagic, string what)
    {
        Span<byte> word = stackalloc byte[4];
        if (Read(s, path, word) < 4)
            throw new DataException(path, "is truncated: shorter than the 4-byte IDX magic number", "Fetch the file again");
        int magic = BinaryPrimitives.ReadInt32BigEndian(word);
        if (magic != expectedMagic)
            throw new DataException(path, $"has magic number 0x{magic:X8} where IDX {what} have 0x{expectedMagic:X8}{Describe(magic)}",
                "Give the right file (train-images-idx3-ubyte for images, train-labels-idx1-ubyte for labels)");
        int rank = expectedMagic & 0xFF;
        var dims = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            if (Read(s, path, word) < 4)
                throw new DataException(path, $"is truncated inside its header ({d} of {rank} dimensions present)", "Fetch the file again");
            uint v = BinaryPrimitives.ReadUInt32BigEndian(word);
            if (v == 0 || v > int.MaxValue)
                throw new DataException(path, $"header dimension {d} is {v}", "The header is corrupt or the file is empty: fetch it again");
            dims[d] = (int)v;
        }
        return dims;
    }

    static byte[] ReadBody(Stream s, string path, int length, string what)
    {
        var data = new byte[length];
        int got = Read(s, path, data);
        if (got < length)
            throw new DataException(path, $"is truncated: its header promises {what} ({length} data bytes) but only {got} follow",
                "Fetch the file again (an interrupted download or copy)");
        Span<byte> probe = stackalloc byte[1];
        if (Read(s, path, probe) > 0)
            throw new DataException(path, $"has bytes after the {what} its header describes",
                "The header does not match the data: fetch the file again");
        return data;
    }

    static int Read(Stream s, string path, Span<byte> buffer)
    {
        try { return s.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false); }
        catch (InvalidDataException e)
        {
            throw new DataException(path, $"is not a valid gzip stream ({e.Message})", "The file is corrupt or truncated: fetch it again", e);
        }
        catch (IOException e)
        {
            throw new DataException(path, $"could not be read to the end ({e.Message})", "Check the disk and fetch the file again", e);
        }
    }

    static string Describe(int magic) => magic switch
    {
        ImagesMagic => " (this is an images file)",
        LabelsMagic => " (this is a labels file)",
        _ when (magic >> 16) == 0 => $" (an IDX file of type 0x{(magic >> 8) & 0xFF:X2} with {magic & 0xFF} dims)",
        _ => " (not an IDX file)",
    };
}
