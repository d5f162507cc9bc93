// Splits the flat parameter vector into contiguous key ranges, one per parameter-server shard
// (DESIGN contract 1: a shard's key range is an offset range). Pure; used by PS, workers and tests.
namespace DistTrain.Training.Steps;

public readonly record struct KeyRange(int Offset, int Length)
{
    public int End => Offset + Length;
    public override string ToString() => $"[{Offset}, {End})";
}

public static class KeyRanges
{
    /// <summary>
    /// Cuts [0, total) into <paramref name="shards"/> ranges of near-equal length whose boundaries are
    /// multiples of <paramref name="align"/> floats (64 bytes by default, so each shard's span starts on
    /// a cache line). A function of (total, shards, align) only, so every node computes the same layout.
    /// </summary>
    public static KeyRange[] Split(int total, int shards, int align = 16)
    {
        if (total < 0) throw new ArgumentOutOfRangeException(nameof(total), total, "Parameter count must be non-negative.");
        if (shards < 1) throw new ArgumentOutOfRangeException(nameof(shards), shards, "At least one parameter-server shard is required.");
        if (align < 1) throw new ArgumentOutOfRangeException(nameof(align), align, "Alignment must be positive.");
        var ranges = new KeyRange[shards];
        int start = 0;
        for (int s = 0; s < shards; s++)
        {
            long ideal = (long)total * (s + 1) / shards;
            int end = s == shards - 1 ? total : (int)Math.Min(total, (ideal + align / 2) / align * align);
            if (end < start) end = start;
            ranges[s] = new KeyRange(start, end - start);
            start = end;
        }
        return ranges;
    }

    /// <summary>
    /// The frames a sync shard pushes a new version of <paramref name="range"/> in, in key order: cut only at layer
    /// boundaries (<paramref name="runStarts"/>: where each layer's parameters begin), walking from the end and cutting
    /// where the piece behind reaches <paramref name="minChunk"/> floats, so the first layers' values come first in one
    /// small frame (a worker starts its forward on them) and the big later layers follow while it computes. The same
    /// cuts a worker's backward sends its gradient in. minChunk ≤ 0: the whole range in one frame.
    /// </summary>
    public static KeyRange[] PushChunks(KeyRange range, IEnumerable<int> runStarts, int minChunk)
    {
        ArgumentNullException.ThrowIfNull(runStarts);
        if (minChunk <= 0 || range.Length == 0) return [range];
        var cuts = new List<KeyRange>();
        int end = range.End;
        foreach (var b in runStarts.Where(b => b > range.Offset && b < range.End).Distinct().OrderDescending())
            if (end - b >= minChunk) { cuts.Add(new KeyRange(b, end - b)); end = b; }
        cuts.Add(new KeyRange(range.Offset, end - range.Offset));
        cuts.Reverse();
        return cuts.ToArray();
    }
}
