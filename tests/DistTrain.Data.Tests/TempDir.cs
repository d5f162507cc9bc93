// A temporary directory per test, deleted afterwards; and helpers that write small IDX files byte
// by byte (independently of IdxWriter) so the reader is tested against a hand-made layout.
using System.Buffers.Binary;
using System.IO.Compression;

namespace DistTrain.Data.Tests;

public sealed class TempDir : IDisposable
{
    public TempDir() { Path = Directory.CreateTempSubdirectory("disttrain-data-").FullName; }
    public string Path { get; }
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }

    /// <summary>Big-endian IDX bytes: magic, dims, then the payload.</summary>
    public static byte[] Idx(int magic, int[] dims, byte[] payload)
    {
        var bytes = new byte[4 + 4 * dims.Length + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * d), dims[d]);
        payload.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    public static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal)) gz.Write(data);
        return ms.ToArray();
    }

    /// <summary>Writes images (count, rows, cols) with pixel = (7·i + 3) mod 256 and labels i mod classes.</summary>
    public (string Images, string Labels) WriteSet(string prefix, int count, int rows, int cols, int classes, bool gzip)
    {
        var px = new byte[count * rows * cols];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)((7 * i + 3) % 256);
        var lb = new byte[count];
        for (int i = 0; i < count; i++) lb[i] = (byte)(i % classes);
        var ext = gzip ? ".gz" : "";
        var images = File($"{prefix}-images-idx3-ubyte{ext}");
        var labels = File($"{prefix}-labels-idx1-ubyte{ext}");
        var ib = Idx(0x803, [count, rows, cols], px);
        var lbb = Idx(0x801, [count], lb);
        System.IO.File.WriteAllBytes(images, gzip ? Gzip(ib) : ib);
        System.IO.File.WriteAllBytes(labels, gzip ? Gzip(lbb) : lbb);
        return (images, labels);
    }
}
