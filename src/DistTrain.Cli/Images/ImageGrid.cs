// A grid of grayscale images written as an 8-bit PNG (signature, IHDR, one zlib IDAT of unfiltered rows, IEND, each
// chunk with its CRC-32), with nothing but the BCL: reconstructions, VAE samples and latent traversals.
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace DistTrain.Cli.Images;

public static class ImageGrid
{
    /// <summary>Lays out <paramref name="images"/> (each H×W values in [0,1], row-major) <paramref name="columns"/> per row
    /// with a <paramref name="gap"/>-pixel border, and writes the PNG to <paramref name="file"/>.</summary>
    public static void Write(string file, IReadOnlyList<float[]> images, int h, int w, int columns, int gap = 2)
    {
        if (images.Count == 0) throw new ArgumentException("An image grid needs at least one image.", nameof(images));
        int rows = (images.Count + columns - 1) / columns;
        int width = columns * (w + gap) + gap, height = rows * (h + gap) + gap;
        var px = new byte[height * width];
        Array.Fill(px, (byte)128);
        for (int k = 0; k < images.Count; k++)
        {
            var img = images[k];
            if (img.Length != h * w) throw new ArgumentException($"Image {k} has {img.Length} values, not {h}×{w}.", nameof(images));
            int top = gap + (k / columns) * (h + gap), left = gap + (k % columns) * (w + gap);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    px[(top + y) * width + left + x] = (byte)Math.Clamp(MathF.Round(img[y * w + x] * 255f), 0f, 255f);
        }
        var dir = Path.GetDirectoryName(Path.GetFullPath(file));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllBytes(file, Encode(px, width, height));
    }

    /// <summary>PNG bytes of an 8-bit grayscale image (row-major, width × height).</summary>
    public static byte[] Encode(byte[] gray, int width, int height)
    {
        using var ms = new MemoryStream();
        ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8;   // bit depth; colour type 0 (grayscale), compression, filter and interlace 0
        Chunk(ms, "IHDR", ihdr);
        using (var raw = new MemoryStream())
        {
            using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
                for (int y = 0; y < height; y++)
                {
                    z.WriteByte(0);   // filter: none
                    z.Write(gray, y * width, width);
                }
            Chunk(ms, "IDAT", raw.ToArray());
        }
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> b4 = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b4, data.Length);
        s.Write(b4);
        var t = Encoding.ASCII.GetBytes(type);
        s.Write(t);
        s.Write(data);
        uint crc = Crc32(Crc32(0xFFFFFFFFu, t), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(b4, crc);
        s.Write(b4);
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc32(uint crc, byte[] data)
    {
        foreach (var b in data) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }
}
