// Seeded training-time augmentation of image batches (C,H,W samples): random crop after zero padding,
// then random horizontal flip, as torchvision's RandomCrop(padding=P) + RandomHorizontalFlip. Every draw
// is a hash of (seed, step, micro-batch, sample position), never a shared generator's state, so a cluster
// worker and the one-process trainer produce the same augmented micro-batch (DESIGN contract 2).
using System.Globalization;
using DistTrain.Data.Plans;

namespace DistTrain.Data.Augmentation;

/// <summary>
/// What to do to each training sample: shift by (dy,dx) ∈ [-P,P]² with zero fill (a crop of the image padded
/// by P), then mirror left-right with probability 1/2. <see cref="None"/> leaves the batch untouched.
/// Text form (the `--augment` option and the wire): "none", or a comma list of "crop:P" and "flip".
/// </summary>
public sealed record ImageAugmentation(int CropPadding, bool HorizontalFlip)
{
    public static readonly ImageAugmentation None = new(0, false);

    public bool Enabled => CropPadding > 0 || HorizontalFlip;

    /// <summary>Parses "none" | "crop:P[,flip]" | "flip" (order free). Throws naming the bad part.</summary>
    public static ImageAugmentation Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Trim() == "none") return None;
        int pad = 0; bool flip = false;
        foreach (var raw in text.Split(','))
        {
            var part = raw.Trim();
            if (part == "flip") flip = true;
            else if (part.StartsWith("crop:", StringComparison.Ordinal)
                     && int.TryParse(part.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int p) && p is >= 1 and <= 64)
                pad = p;
            else
                throw new ArgumentException($"Augmentation \"{part}\" in \"{text}\" is not one of: none, crop:P (padding P in 1..64), flip; e.g. --augment crop:2,flip.");
        }
        return new ImageAugmentation(pad, flip);
    }

    /// <summary>The canonical text form (Parse round-trips it).</summary>
    public override string ToString() => (CropPadding, HorizontalFlip) switch
    {
        (0, false) => "none",
        (0, true) => "flip",
        (var p, false) => $"crop:{p}",
        (var p, true) => $"crop:{p},flip",
    };

    /// <summary>The (dy, dx, flip) drawn for one sample: a pure function of its key.</summary>
    public (int Dy, int Dx, bool Flip) Draw(ulong seed, long step, int microBatch, int sample)
    {
        // Keyed hash, domain-separated from the epoch plan and dropout streams by the leading constant.
        ulong h = Xoshiro256.Mix(0xA06D_E47A_7109_0001UL ^ seed);
        h = Xoshiro256.Mix(h ^ (ulong)step);
        h = Xoshiro256.Mix(h ^ (uint)microBatch);
        h = Xoshiro256.Mix(h ^ (uint)sample);
        int span = 2 * CropPadding + 1;
        // Three disjoint bit fields; a modulus of ≤ 129 over 21 bits has negligible bias.
        int dy = CropPadding == 0 ? 0 : (int)((h & 0x1F_FFFF) % (ulong)span) - CropPadding;
        int dx = CropPadding == 0 ? 0 : (int)(((h >> 21) & 0x1F_FFFF) % (ulong)span) - CropPadding;
        bool flip = HorizontalFlip && (h >> 63) != 0;
        return (dy, dx, flip);
    }

    /// <summary>
    /// Augments the first <paramref name="count"/> samples of x (count, C, H, W) in place; sample i is keyed
    /// (seed, step, microBatch, i). <paramref name="scratch"/> needs H·W floats (reused, so nothing allocates).
    /// </summary>
    public void Apply(Span<float> x, int count, int channels, int height, int width,
        ulong seed, long step, int microBatch, Span<float> scratch)
    {
        if (!Enabled) return;
        int plane = height * width;
        if (scratch.Length < plane)
            throw new ArgumentException($"Augmentation scratch has {scratch.Length} floats; an {height}x{width} image needs {plane}.", nameof(scratch));
        if (x.Length < count * channels * plane)
            throw new ArgumentException($"Batch of {x.Length} floats is too small for {count} samples of ({channels},{height},{width}).", nameof(x));
        var tmp = scratch[..plane];
        for (int i = 0; i < count; i++)
        {
            var (dy, dx, flip) = Draw(seed, step, microBatch, i);
            if (dy == 0 && dx == 0 && !flip) continue;
            for (int c = 0; c < channels; c++)
            {
                var img = x.Slice((i * channels + c) * plane, plane);
                img.CopyTo(tmp);
                Transform(tmp, img, height, width, dy, dx, flip);
            }
        }
    }

    /// <summary>dst[y,x] = src[y+dy, x'+dx] with x' = W-1-x when flipped, else x; zero outside the image.</summary>
    private static void Transform(ReadOnlySpan<float> src, Span<float> dst, int height, int width, int dy, int dx, bool flip)
    {
        for (int y = 0; y < height; y++)
        {
            var row = dst.Slice(y * width, width);
            int sy = y + dy;
            if ((uint)sy >= (uint)height) { row.Clear(); continue; }
            var srow = src.Slice(sy * width, width);
            if (!flip)
            {
                // Contiguous copy of the in-range part; the shifted-in border is the zero padding.
                int lo = Math.Clamp(-dx, 0, width), hi = Math.Clamp(width - dx, 0, width);
                if (hi <= lo) { row.Clear(); continue; } // shifted by a whole width or more
                row[..lo].Clear();
                srow.Slice(lo + dx, hi - lo).CopyTo(row[lo..hi]);
                row[hi..].Clear();
            }
            else
            {
                for (int x = 0; x < width; x++)
                {
                    int sx = width - 1 - x + dx;
                    row[x] = (uint)sx < (uint)width ? srow[sx] : 0f;
                }
            }
        }
    }
}
