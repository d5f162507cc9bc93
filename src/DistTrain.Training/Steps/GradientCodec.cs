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
// A frame [offset, offset + n) is encoded as: bf16 / fp16 n little-endian uint16; int8 the scales of the blocks it
// touches (float32 LE, in block order), then n signed bytes.
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace DistTrain.Training.Steps;

public enum GradientCompression : byte { None = 0, Bf16 = 1, Fp16 = 2, Int8 = 3 }

public static class GradientCodec
{
    /// <summary>Values per int8 scale: the scale costs 4 bytes per 256 (1.6%) and bounds an outlier's reach to its block.</summary>
    public const int Int8Block = 256;

    public static readonly string[] Names = ["none", "bf16", "fp16", "int8"];

    public static string Name(GradientCompression c) => Names[(int)c];

    /// <summary>Parses a --compression value; a clear error names the value and the choices.</summary>
    public static GradientCompression Parse(string? text)
    {
        int i = Array.IndexOf(Names, (text ?? "none").Trim().ToLowerInvariant());
        return i >= 0 ? (GradientCompression)i
            : throw new ArgumentException($"--compression '{text}' is not known: use none, bf16, fp16 or int8.");
    }

    /// <summary>Bytes one frame of <paramref name="length"/> values starting at flat index <paramref name="offset"/> takes.</summary>
    public static long EncodedBytes(GradientCompression c, long offset, int length) => c switch
    {
        GradientCompression.None => (long)length * sizeof(float),
        GradientCompression.Bf16 or GradientCompression.Fp16 => (long)length * sizeof(ushort),
        GradientCompression.Int8 => Int8Blocks(offset, length) * sizeof(float) + length,
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, "unknown gradient compression"),
    };

    /// <summary>Int8 blocks that [offset, offset + length) touches (written without offset + length, which a hostile header
    /// could make overflow).</summary>
    public static long Int8Blocks(long offset, int length) =>
        length <= 0 ? 0 : ((offset % Int8Block) + length - 1) / Int8Block + 1;

    /// <summary>
    /// Sync streaming: the backward has made the gradient final from <paramref name="finalFrom"/> on. A frame may start only
    /// where every int8 block it touches is final, i.e. at the next block boundary.
    /// </summary>
    public static long EncodableFrom(GradientCompression c, long finalFrom) =>
        c == GradientCompression.Int8 ? (finalFrom + Int8Block - 1) / Int8Block * Int8Block : finalFrom;

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
            default: throw new ArgumentOutOfRangeException(nameof(c), c, "unknown gradient compression");
        }
    }

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
            default: throw new ArgumentOutOfRangeException(nameof(c), c, "unknown gradient compression");
        }
    }
}
