// IDX reading against files the tests write byte by byte (plain and gzip), and every error case:
// missing file, wrong magic, truncated header/data, trailing bytes, label/image count mismatch,
// label out of range, corrupt gzip. Never touches the real Fashion-MNIST download.
using DistTrain.Data.Sources;
using Xunit;

namespace DistTrain.Data.Tests;

public class IdxReaderTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsImagesAndLabelsScaledToUnitInterval(bool gzip)
    {
        using var dir = new TempDir();
        var (images, labels) = dir.WriteSet("train", count: 5, rows: 4, cols: 3, classes: 3, gzip);
        var ds = IdxReader.Load(images, labels, classes: 3);
        Assert.Equal([1, 4, 3], ds.SampleShape);
        Assert.Equal(5, ds.Count);
        Assert.Equal(3, ds.Classes);
        for (int i = 0; i < 5 * 12; i++) Assert.Equal(((7 * i + 3) % 256) / 255f, ds.Features[i]);
        Assert.Equal([0, 1, 2, 0, 1], ds.Labels);
    }

    [Fact]
    public void HandBuiltBytesGiveExactPixels()
    {
        using var dir = new TempDir();
        // Two 2×2 images: 0, 255, 51, 102 | 1, 2, 3, 4
        File.WriteAllBytes(dir.File("i"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 255, 51, 102, 1, 2, 3, 4]);
        File.WriteAllBytes(dir.File("l"), [0, 0, 8, 1, 0, 0, 0, 2, 9, 0]);
        var ds = IdxReader.Load(dir.File("i"), dir.File("l"));
        Assert.Equal([0f, 1f, 0.2f, 0.4f, 1 / 255f, 2 / 255f, 3 / 255f, 4 / 255f], ds.Features);
        Assert.Equal([9, 0], ds.Labels);
        Assert.Equal(10, ds.Classes);
    }

    [Fact]
    public void GzipIsDetectedByMagicNotByName()
    {
        using var dir = new TempDir();
        var (images, labels) = dir.WriteSet("t10k", 3, 2, 2, 10, gzip: true);
        File.Move(images, dir.File("imgs.bin"));
        File.Move(labels, dir.File("lbls.idx"));
        var ds = IdxReader.Load(dir.File("imgs.bin"), dir.File("lbls.idx"));
        Assert.Equal(3, ds.Count);
        Assert.Equal(3 / 255f, ds.Features[0]);
    }

    [Fact]
    public void MissingFileSaysWhereItLookedAndHowToInstall()
    {
        using var dir = new TempDir();
        var path = dir.File("train-images-idx3-ubyte");
        var e = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
        Assert.Contains("scripts/setup.sh", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LabelsFileGivenAsImagesIsWrongMagic(bool gzip)
    {
        using var dir = new TempDir();
        var (_, labels) = dir.WriteSet("train", 2, 2, 2, 2, gzip);
        var e = Assert.Throws<DataException>(() => IdxReader.ReadImages(labels));
        Assert.Contains(labels, e.Message);
        Assert.Contains("0x00000801", e.Message);
        Assert.Contains("0x00000803", e.Message);
        Assert.Contains("labels file", e.Message);
    }

    [Fact]
    public void NonIdxFileIsWrongMagic()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("page.html"), "<!DOCTYPE html><html></html>");
        var e = Assert.Throws<DataException>(() => IdxReader.ReadLabels(dir.File("page.html")));
        Assert.Contains("not an IDX file", e.Message);
        Assert.Contains("page.html", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncatedDataIsReported(bool gzip)
    {
        using var dir = new TempDir();
        var bytes = TempDir.Idx(0x803, [3, 2, 2], new byte[11]); // 12 promised, 11 present
        var path = dir.File("short");
        File.WriteAllBytes(path, gzip ? TempDir.Gzip(bytes) : bytes);
        var e = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("12 data bytes", e.Message);
        Assert.Contains("only 11", e.Message);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(9)]
    public void TruncatedHeaderIsReported(int keep)
    {
        using var dir = new TempDir();
        var bytes = TempDir.Idx(0x803, [3, 2, 2], new byte[12])[..keep];
        File.WriteAllBytes(dir.File("h"), bytes);
        var e = Assert.Throws<DataException>(() => IdxReader.ReadImages(dir.File("h")));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void GzipCutShortIsAnErrorNotSilentData()
    {
        using var dir = new TempDir();
        var gz = TempDir.Gzip(TempDir.Idx(0x803, [50, 10, 10], Enumerable.Range(0, 5000).Select(i => (byte)(i * 31)).ToArray()));
        File.WriteAllBytes(dir.File("cut.gz"), gz[..(gz.Length / 2)]);
        var e = Assert.Throws<DataException>(() => IdxReader.ReadImages(dir.File("cut.gz")));
        Assert.Contains("cut.gz", e.Message);
    }

    [Fact]
    public void CorruptGzipIsReported()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("bad.gz"), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        var e = Assert.Throws<DataException>(() => IdxReader.ReadImages(dir.File("bad.gz")));
        Assert.Contains("bad.gz", e.Message);
    }

    [Fact]
    public void TrailingBytesAreReported()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("long"), TempDir.Idx(0x801, [2], [1, 2, 3]));
        var e = Assert.Throws<DataException>(() => IdxReader.ReadLabels(dir.File("long")));
        Assert.Contains("bytes after", e.Message);
    }

    [Fact]
    public void LabelCountDifferentFromImageCountNamesBothFiles()
    {
        using var dir = new TempDir();
        var (images, _) = dir.WriteSet("train", 4, 2, 2, 2, gzip: false);
        var (_, labels) = dir.WriteSet("t10k", 3, 2, 2, 2, gzip: false);
        var e = Assert.Throws<DataException>(() => IdxReader.Load(images, labels));
        Assert.Contains(labels, e.Message);
        Assert.Contains(images, e.Message);
        Assert.Contains("3 labels", e.Message);
        Assert.Contains("4 images", e.Message);
    }

    [Fact]
    public void LabelOutOfRangeNamesFileIndexAndClassCount()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("i"), TempDir.Idx(0x803, [3, 1, 1], [0, 0, 0]));
        File.WriteAllBytes(dir.File("l"), TempDir.Idx(0x801, [3], [0, 10, 2]));
        var e = Assert.Throws<DataException>(() => IdxReader.Load(dir.File("i"), dir.File("l"), classes: 10));
        Assert.Contains(dir.File("l"), e.Message);
        Assert.Contains("label 10 at index 1", e.Message);
        Assert.Contains("10 classes", e.Message);
        Assert.Equal(2, IdxReader.Load(dir.File("i"), dir.File("l"), classes: 11).Labels[2]);
    }

    [Fact]
    public void WriterOutputIsTheHandBuiltLayoutAndRoundTrips()
    {
        using var dir = new TempDir();
        IdxWriter.WriteImages(dir.File("w"), [0, 255, 51, 102, 1, 2, 3, 4], 2, 2, 2);
        Assert.Equal([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 255, 51, 102, 1, 2, 3, 4], File.ReadAllBytes(dir.File("w")));
        IdxWriter.WriteLabels(dir.File("wl.gz"), [9, 0], gzip: true);
        var ds = IdxReader.Load(dir.File("w"), dir.File("wl.gz"));
        IdxWriter.WriteDataset(ds, dir.File("a"), dir.File("b"), gzip: true);
        var back = IdxReader.Load(dir.File("a"), dir.File("b"));
        Assert.Equal(ds.Features, back.Features);
        Assert.Equal(ds.Labels, back.Labels);
    }
}
