// ImageAugmentation: draws are a pure function of (seed, step, micro-batch, sample); crop and flip match
// a naive reference written from the definition (pad with zeros, take the window, mirror); parsing.
using DistTrain.Data.Augmentation;
using Xunit;

namespace DistTrain.Data.Tests;

public class ImageAugmentationTests
{
    private static readonly ImageAugmentation CropFlip = new(2, true);

    private static float[] RandomImages(int n, int c, int h, int w, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n * c * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble() + 0.5f; // never 0, so a zero means padding
        return x;
    }

    /// <summary>The definition, spelled out: pad by P with zeros, take the H×W window at (P+dy, P+dx), then mirror.</summary>
    private static float[] Reference(float[] img, int h, int w, int pad, int dy, int dx, bool flip)
    {
        int ph = h + 2 * pad, pw = w + 2 * pad;
        var padded = new float[ph * pw];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) padded[(y + pad) * pw + x + pad] = img[y * w + x];
        var crop = new float[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) crop[y * w + x] = padded[(y + pad + dy) * pw + x + pad + dx];
        if (!flip) return crop;
        var mirrored = new float[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) mirrored[y * w + x] = crop[y * w + (w - 1 - x)];
        return mirrored;
    }

    [Theory]
    [InlineData(1, 28, 28, 2, true)]
    [InlineData(3, 7, 5, 3, true)]
    [InlineData(2, 6, 9, 1, false)]
    [InlineData(1, 4, 4, 0, true)]
    public void Apply_matches_the_naive_pad_crop_flip_reference(int c, int h, int w, int pad, bool flip)
    {
        var aug = new ImageAugmentation(pad, flip);
        const int n = 64;
        var x = RandomImages(n, c, h, w, 7);
        var original = (float[])x.Clone();
        aug.Apply(x, n, c, h, w, seed: 5, step: 123, microBatch: 3, new float[h * w]);
        int plane = h * w, flips = 0;
        var shifts = new HashSet<(int, int)>();
        for (int i = 0; i < n; i++)
        {
            var (dy, dx, f) = aug.Draw(5, 123, 3, i);
            Assert.InRange(dy, -pad, pad);
            Assert.InRange(dx, -pad, pad);
            shifts.Add((dy, dx)); if (f) flips++;
            for (int ch = 0; ch < c; ch++)
            {
                int off = (i * c + ch) * plane;
                var want = Reference(original[off..(off + plane)], h, w, pad, dy, dx, f);
                Assert.Equal(want, x[off..(off + plane)]);
            }
        }
        // 64 samples exercise several offsets and both flip outcomes (not a constant draw).
        if (pad > 0) Assert.True(shifts.Count >= 5, $"only {shifts.Count} distinct shifts");
        if (flip) Assert.InRange(flips, 10, 54); else Assert.Equal(0, flips);
    }

    [Fact]
    public void Draws_depend_only_on_seed_step_microbatch_and_sample()
    {
        var a = new ImageAugmentation(2, true);
        var b = ImageAugmentation.Parse("crop:2,flip"); // a separate instance: no hidden state
        var first = Enumerable.Range(0, 200).Select(i => a.Draw(1, 40, 2, i)).ToArray();
        // Interleave other draws on b, then draw the same keys in reverse order.
        for (int i = 0; i < 50; i++) b.Draw(9, i, i, i);
        var again = Enumerable.Range(0, 200).Reverse().Select(i => b.Draw(1, 40, 2, i)).Reverse().ToArray();
        Assert.Equal(first, again);
        // Each key component changes the draws.
        Assert.NotEqual(first, Enumerable.Range(0, 200).Select(i => a.Draw(2, 40, 2, i)).ToArray());
        Assert.NotEqual(first, Enumerable.Range(0, 200).Select(i => a.Draw(1, 41, 2, i)).ToArray());
        Assert.NotEqual(first, Enumerable.Range(0, 200).Select(i => a.Draw(1, 40, 3, i)).ToArray());
    }

    [Fact]
    public void Applying_the_same_key_twice_gives_the_same_batch()
    {
        var x1 = RandomImages(32, 1, 28, 28, 3);
        var x2 = (float[])x1.Clone();
        var scratch = new float[28 * 28];
        CropFlip.Apply(x1, 32, 1, 28, 28, 1, 77, 1, scratch);
        CropFlip.Apply(x2, 32, 1, 28, 28, 1, 77, 1, scratch);
        Assert.Equal(x1, x2);
    }

    [Fact]
    public void Flip_of_a_flip_is_the_identity()
    {
        var flipOnly = new ImageAugmentation(0, true);
        var x = RandomImages(40, 2, 5, 7, 11);
        var original = (float[])x.Clone();
        var scratch = new float[35];
        flipOnly.Apply(x, 40, 2, 5, 7, 3, 9, 0, scratch);
        Assert.NotEqual(original, x);
        flipOnly.Apply(x, 40, 2, 5, 7, 3, 9, 0, scratch);
        Assert.Equal(original, x);
    }

    [Fact]
    public void None_leaves_the_batch_untouched()
    {
        var x = RandomImages(8, 1, 6, 6, 2);
        var original = (float[])x.Clone();
        ImageAugmentation.None.Apply(x, 8, 1, 6, 6, 1, 1, 0, []);
        Assert.Equal(original, x);
        Assert.False(ImageAugmentation.None.Enabled);
    }

    [Fact]
    public void A_shift_of_a_whole_width_or_more_blanks_the_image()
    {
        var aug = new ImageAugmentation(6, false);
        var x = RandomImages(200, 1, 3, 3, 4);
        var original = (float[])x.Clone();
        aug.Apply(x, 200, 1, 3, 3, 1, 2, 0, new float[9]);
        for (int i = 0; i < 200; i++)
        {
            var (dy, dx, _) = aug.Draw(1, 2, 0, i);
            Assert.Equal(Reference(original[(i * 9)..(i * 9 + 9)], 3, 3, 6, dy, dx, false), x[(i * 9)..(i * 9 + 9)]);
        }
    }

    [Theory]
    [InlineData("none", 0, false, "none")]
    [InlineData("", 0, false, "none")]
    [InlineData("flip", 0, true, "flip")]
    [InlineData("crop:2", 2, false, "crop:2")]
    [InlineData("flip, crop:4", 4, true, "crop:4,flip")]
    public void Parse_reads_the_text_form_and_ToString_round_trips(string text, int pad, bool flip, string canonical)
    {
        var a = ImageAugmentation.Parse(text);
        Assert.Equal(new ImageAugmentation(pad, flip), a);
        Assert.Equal(canonical, a.ToString());
        Assert.Equal(a, ImageAugmentation.Parse(a.ToString()));
    }

    [Theory]
    [InlineData("crop")]
    [InlineData("crop:0")]
    [InlineData("crop:-1")]
    [InlineData("rotate")]
    [InlineData("crop:2,mirror")]
    public void Parse_rejects_unknown_or_impossible_parts_naming_them(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => ImageAugmentation.Parse(text));
        Assert.Contains("crop:P", e.Message);
        Assert.Contains(text.Split(',')[^1].Trim(), e.Message);
    }
}
