// Gradient compression on the data plane (`--compression`): the worker that computed a micro-batch gradient encodes it,
// the shard decodes it before the ordered sum. What the shard sums is a function of the gradient alone — never of the
// frame cuts, the shard layout or which worker sent it — so sync mode keeps DESIGN contract 2, and the one-process
// Trainer applies the same RoundTrip to each micro-batch gradient, so one process and a cluster give the same bits.
//   bf16  the float32's top 16 bits, rounded to nearest even; a NaN stays a (quiet) NaN.
//   fp16  IEEE binary16, rounded to nearest even, with subnormals; |x| ≥ 65520 becomes ±∞ (and is then refused as
//         not finite, like a diverged float32 gradient: bf16 has float32's range).
//   int8  blocks of Int8Block values on the flat vector (block k = [k·Int8Block, (k+1)·Int8Block)), each with a float32
//         scale s = max|x| / 127 and q = round-to-even(x / s) in [-127, 127], decoded as q·s. Blocks are fixed on the
//         flat vector, not on a frame, so a frame that begins or ends inside a block carries that block's scale, computed
//         over the whole block. A block holding NaN or ±∞ gets scale NaN, so it decodes to NaN and is refused like the
//         float32 gradient would be.
//   topk  blocks of TopKBlock values on the flat vector; each keeps its TopK largest |x| (a non-finite value first,
//         ties to the lower index) and zeroes the rest. Meant with error feedback (ErrorFeedback: what a block did not
//         send is added to the next gradient), which lives with whoever computes the micro-batches: one process or one
//         worker give the same bits, several workers do not (which worker carries which residual depends on timing).
// A frame [offset, offset + n) is encoded as: bf16 / fp16 n little-endian uint16; int8 the scales of the blocks it
// touches (float32 LE, in block order), then n signed bytes; topk TopK entries per block it touches (uint16 LE index in
// the block, 0xFFFF for none, then the float32 LE value), including a block's entries outside the frame, which the
// receiver skips.
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace DistTrain.Training.Steps;

public enum GradientCompression : byte { None = 0, Bf16 = 1, Fp16 = 2, Int8 = 3, TopK = 4 }

public static class GradientCodec
{
    /// <summary>Values per int8 scale: the scale costs 4 bytes per 256 (1.6%) and bounds an outlier's reach to its block.</summary>
    public const int Int8Block = 256;

    /// <summary>Top-k: values per block and values a block keeps (about 1%).</summary>
    public const int TopKBlock = 1024, TopK = 10;
    private const int TopKEntryBytes = sizeof(ushort) + sizeof(float);
    private const ushort NoEntry = 0xFFFF;

    public static readonly string[] Names = ["none", "bf16", "fp16", "int8", "topk"];

    public static string Name(GradientCompression c) => Names[(int)c];

    /// <summary>Parses a --compression value; a clear error names the value and the choices.</summary>
    public static GradientCompression Parse(string? text)
    {
        int i = Array.IndexOf(Names, (text ?? "none").Trim().ToLowerInvariant());
        return i >= 0 ? (GradientCompression)i
            : throw new ArgumentException($"--compression '{text}' is not known: use none, bf16, fp16, int8 or topk.");
    }

    /// <summary>Bytes one frame of <paramref name="length"/> values starting at flat index <paramref name="offset"/> takes.</summary>
    public static long EncodedBytes(GradientCompression c, long offset, int length) => c switch
    {
        GradientCompression.None => (long)length * sizeof(float),
        GradientCompression.Bf16 or GradientCompression.Fp16 => (long)length * sizeof(ushort),
        GradientCompression.Int8 => Int8Blocks(offset, length) * sizeof(float) + length,
        GradientCompression.TopK => Blocks(TopKBlock, offset, length) * TopK * TopKEntryBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, "unknown gradient compression"),
    };

    /// <summary>Int8 blocks that [offset, offset + length) touches (written without offset + length, which a hostile header
    /// could make overflow).</summary>
    public static long Int8Blocks(long offset, int length) => Blocks(Int8Block, offset, length);

    private static long Blocks(int block, long offset, int length) => length <= 0 ? 0 : ((offset % block) + length - 1) / block + 1;

    /// <summary>
    /// Sync streaming: the backward has made the gradient final from <paramref name="finalFrom"/> on. A frame may start only
    /// where every int8 block it touches is final, i.e. at the next block boundary.
    /// </summary>
    public static long EncodableFrom(GradientCompression c, long finalFrom) => c switch
    {
        GradientCompression.Int8 => (finalFrom + Int8Block - 1) / Int8Block * Int8Block,
        GradientCompression.TopK => (finalFrom + TopKBlock - 1) / TopKBlock * TopKBlock,
        _ => finalFrom,
    };

    // ---- one value ----

    public static ushort ToBf16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if (float.IsNaN(x)) return (ushort)((bits >> 16) | 0x0040); // keep it a NaN whatever its payload
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
    }

    public static float FromBf16(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    public static ushort ToFp16(float x) => BitConverter.HalfToUInt16Bits((Half)x);

    public static float FromFp16(ushort h) => (float)BitConverter.UInt16BitsToHalf(h);

    /// <summary>The int8 scale of block <paramref name="block"/> of the flat vector <paramref name="all"/>: max|x| / 127, or
    /// NaN when the block holds a value that is not finite.</summary>
    public static float Int8Scale(ReadOnlySpan<float> all, long block)
    {
        int from = (int)(block * Int8Block), to = (int)Math.Min(all.Length, from + (long)Int8Block);
        float max = 0f;
        for (int i = from; i < to; i++)
        {
            float a = MathF.Abs(all[i]);
            if (!float.IsFinite(a)) return float.NaN;
            if (a > max) max = a;
        }
        return max / 127f;
    }

    public static sbyte ToInt8(float x, float scale) =>
        scale == 0f || float.IsNaN(scale) ? (sbyte)0 : (sbyte)Math.Clamp(MathF.Round(x / scale, MidpointRounding.ToEven), -127f, 127f);

    public static float FromInt8(sbyte q, float scale) => q * scale;

    // ---- frames ----

    /// <summary>
    /// Encodes the frame [<paramref name="offset"/>, offset + <paramref name="length"/>) of the flat gradient
    /// <paramref name="all"/> (int8 reads the whole of each block it touches) into <paramref name="destination"/>; returns
    /// the bytes written (EncodedBytes).
    /// </summary>
    public static int Encode(GradientCompression c, ReadOnlySpan<float> all, int offset, int length, Span<byte> destination)
    {
        var src = all.Slice(offset, length);
        int bytes = (int)EncodedBytes(c, offset, length);
        var dst = destination[..bytes];
        switch (c)
        {
            case GradientCompression.None:
                MemoryMarshal.AsBytes(src).CopyTo(dst);
                break;
            case GradientCompression.Bf16:
                for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst[(2 * i)..], ToBf16(src[i]));
                break;
            case GradientCompression.Fp16:
                for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst[(2 * i)..], ToFp16(src[i]));
                break;
            case GradientCompression.Int8:
            {
                long first = offset / Int8Block, blocks = Int8Blocks(offset, length);
                var q = dst[(int)(blocks * sizeof(float))..];
                for (long k = 0; k < blocks; k++)
                {
                    float scale = Int8Scale(all, first + k);
                    BinaryPrimitives.WriteSingleLittleEndian(dst[(int)(k * sizeof(float))..], scale);
                    int from = (int)Math.Max(offset, (first + k) * Int8Block), to = (int)Math.Min(offset + (long)length, (first + k + 1) * Int8Block);
                    for (int i = from; i < to; i++) q[i - offset] = (byte)ToInt8(all[i], scale);
                }
                break;
            }
            case GradientCompression.TopK:
            {
                long first = offset / TopKBlock, blocks = Blocks(TopKBlock, offset, length);
                Span<int> kept = stackalloc int[TopK];
                for (long k = 0; k < blocks; k++)
                {
                    int from = (int)((first + k) * TopKBlock), count = SelectTopK(all.Slice(from, Math.Min(TopKBlock, all.Length - from)), kept);
                    var entries = dst[(int)(k * TopK * TopKEntryBytes)..];
                    for (int e = 0; e < TopK; e++)
                    {
                        var entry = entries[(e * TopKEntryBytes)..];
                        BinaryPrimitives.WriteUInt16LittleEndian(entry, e < count ? (ushort)kept[e] : NoEntry);
                        BinaryPrimitives.WriteSingleLittleEndian(entry[sizeof(ushort)..], e < count ? all[from + kept[e]] : 0f);
                    }
                }
                break;
            }
            default: throw new ArgumentOutOfRangeException(nameof(c), c, "unknown gradient compression");
        }
        return bytes;
    }

    /// <summary>Decodes a frame that starts at flat index <paramref name="offset"/> into <paramref name="destination"/> (its
    /// length is the frame's value count; <paramref name="source"/> holds exactly EncodedBytes of it).</summary>
    public static void Decode(GradientCompression c, long offset, ReadOnlySpan<byte> source, Span<float> destination)
    {
        int n = destination.Length;
        if (source.Length != EncodedBytes(c, offset, n))
            throw new ArgumentException($"a {Name(c)} frame of {n} values at {offset} takes {EncodedBytes(c, offset, n)} bytes, not {source.Length}.", nameof(source));
        switch (c)
        {
            case GradientCompression.None:
                source.CopyTo(MemoryMarshal.AsBytes(destination));
                break;
            case GradientCompression.Bf16:
                for (int i = 0; i < n; i++) destination[i] = FromBf16(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]));
                break;
            case GradientCompression.Fp16:
                for (int i = 0; i < n; i++) destination[i] = FromFp16(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]));
                break;
            case GradientCompression.Int8:
            {
                long first = offset / Int8Block, blocks = Int8Blocks(offset, n);
                var q = MemoryMarshal.Cast<byte, sbyte>(source[(int)(blocks * sizeof(float))..]);
                for (long k = 0; k < blocks; k++)
                {
                    float scale = BinaryPrimitives.ReadSingleLittleEndian(source[(int)(k * sizeof(float))..]);
                    long from = Math.Max(offset, (first + k) * Int8Block), to = Math.Min(offset + n, (first + k + 1) * Int8Block);
                    for (long i = from; i < to; i++) destination[(int)(i - offset)] = FromInt8(q[(int)(i - offset)], scale);
                }
                break;
            }
            case GradientCompression.TopK:
            {
                destination.Clear();
                long first = offset / TopKBlock, blocks = Blocks(TopKBlock, offset, n);
                for (long k = 0; k < blocks * TopK; k++)
                {
                    var entry = source[(int)(k * TopKEntryBytes)..];
                    ushort index = BinaryPrimitives.ReadUInt16LittleEndian(entry);
                    long at = (first + k / TopK) * TopKBlock + index - offset; // a hostile index ≥ TopKBlock lands outside or is skipped
                    if (index != NoEntry && index < TopKBlock && at >= 0 && at < n)
                        destination[(int)at] = BinaryPrimitives.ReadSingleLittleEndian(entry[sizeof(ushort)..]);
                }
                break;
            }
            default: throw new ArgumentOutOfRangeException(nameof(c), c, "unknown gradient compression");
        }
    }

    /// <summary>
    /// Top-k of one block: the indices of its min(TopK, length) largest |x| (a non-finite value ranks above every finite
    /// one; equal ranks go to the lower index), in increasing index order. Returns how many.
    /// </summary>
    public static int SelectTopK(ReadOnlySpan<float> block, Span<int> kept)
    {
        int count = 0;
        for (int i = 0; i < block.Length; i++)
        {
            float r = Rank(block[i]);
            if (count == TopK && r <= Rank(block[kept[count - 1]])) continue;
            int at = count < TopK ? count++ : TopK - 1;
            // Insertion into the list kept sorted by rank, descending; a later index never passes an equal rank.
            while (at > 0 && Rank(block[kept[at - 1]]) < r) { kept[at] = kept[at - 1]; at--; }
            kept[at] = i;
        }
        kept[..count].Sort();
        return count;
    }

    private static float Rank(float x) => float.IsFinite(x) ? MathF.Abs(x) : float.PositiveInfinity;

    /// <summary>
    /// One process: replaces the whole flat gradient by what a shard decodes from it (Decode of Encode, value for value),
    /// so the one-process Trainer sums the cluster's bits.
    /// </summary>
    public static void RoundTrip(GradientCompression c, Span<float> all)
    {
        switch (c)
        {
            case GradientCompression.None: return;
            case GradientCompression.Bf16:
                for (int i = 0; i < all.Length; i++) all[i] = FromBf16(ToBf16(all[i]));
                return;
            case GradientCompression.Fp16:
                for (int i = 0; i < all.Length; i++) all[i] = FromFp16(ToFp16(all[i]));
                return;
            case GradientCompression.Int8:
                for (long k = 0; k * Int8Block < all.Length; k++)
                {
                    float scale = Int8Scale(all, k);
                    int from = (int)(k * Int8Block), to = Math.Min(all.Length, from + Int8Block);
                    for (int i = from; i < to; i++) all[i] = FromInt8(ToInt8(all[i], scale), scale);
                }
                return;
            case GradientCompression.TopK:
            {
                Span<int> kept = stackalloc int[TopK];
                Span<float> values = stackalloc float[TopK];
                for (int from = 0; from < all.Length; from += TopKBlock)
                {
                    var block = all.Slice(from, Math.Min(TopKBlock, all.Length - from));
                    int count = SelectTopK(block, kept);
                    for (int e = 0; e < count; e++) values[e] = block[kept[e]];
                    block.Clear();
                    for (int e = 0; e < count; e++) block[kept[e]] = values[e];
                }
                return;
            }
            default: throw new ArgumentOutOfRangeException(nameof(c), c, "unknown gradient compression");
        }
    }
}
