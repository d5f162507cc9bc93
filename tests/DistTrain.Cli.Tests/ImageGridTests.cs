// ImageGrid's PNG: the signature, an IHDR with the grid's size (8-bit grayscale), an IDAT whose zlib stream inflates
// to the filtered rows with every image where the layout puts it, and the fixed IEND chunk with its well-known
// CRC-32 (AE 42 60 82), which checks the CRC code against the PNG specification's own value.
using System.Buffers.Binary;
using System.IO.Compression;
using DistTrain.Cli.Images;
using Xunit;

namespace DistTrain.Cli.Tests;

public class ImageGridTests
{
    [Fact]
    public void WritesAValidGrayscalePngWithTheImagesInPlace()
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("disttrain-png-").FullName, "grid.png");
        float[] a = [0f, 1f, 0.5f, 0.25f, 1f, 0f], b = [1f, 1f, 1f, 0f, 0f, 0f], c = [0.2f, 0.4f, 0.6f, 0.8f, 1f, 0f];
        ImageGrid.Write(file, [a, b, c], h: 2, w: 3, columns: 2, gap: 1);
        var png = File.ReadAllBytes(file);

        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        int width = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), height = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20));
        Assert.Equal((2 * (3 + 1) + 1, 2 * (2 + 1) + 1), (width, height));
        Assert.Equal(8, png[24]);   // bit depth
        Assert.Equal(0, png[25]);   // grayscale
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82 }, png[^12..]);

        int idat = 8 + 12 + 13;
        Assert.Equal("IDAT", System.Text.Encoding.ASCII.GetString(png, idat + 4, 4));
        int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(idat));
        using var z = new ZLibStream(new MemoryStream(png, idat + 8, len), CompressionMode.Decompress);
        using var raw = new MemoryStream();
        z.CopyTo(raw);
        var rows = raw.ToArray();
        Assert.Equal(height * (width + 1), rows.Length);
        byte Px(int x, int y) { Assert.Equal(0, rows[y * (width + 1)]); return rows[y * (width + 1) + 1 + x]; }
        Assert.Equal(128, Px(0, 0));                 // border
        Assert.Equal(0, Px(1, 1));                   // a[0,0]
        Assert.Equal(255, Px(2, 1));                 // a[0,1]
        Assert.Equal(64, Px(1, 2));                  // a[1,0] = 0.25
        Assert.Equal(255, Px(5, 1));                 // b[0,0], second column
        Assert.Equal(51, Px(1, 4));                  // c[0,0] = 0.2, second row
        Assert.Equal(128, Px(5, 4));                 // the empty cell stays border grey
    }
}
