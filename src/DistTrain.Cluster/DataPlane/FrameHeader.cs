// The data-plane frame header: a fixed MessagePack array (no maps, no polymorphism, untrusted-data
// limits) written and read by hand so a steady-state transfer allocates nothing.
using System.Buffers;
using DistTrain.Training.Steps;
using MessagePack;

namespace DistTrain.Cluster.DataPlane;

public enum FrameKind : byte
{
    /// <summary>First frame of a connection: names the sender (SenderId); no payload, but followed by the sender's nonce and
    /// proof of its sender id's key (DataPlaneAuth.HelloAuthBytes).</summary>
    Hello = 0,
    /// <summary>A micro-batch gradient for the key range [Offset, Offset+Length).</summary>
    Gradient = 1,
    /// <summary>Parameters of the key range [Offset, Offset+Length) at Version.</summary>
    Parameters = 2,
    /// <summary>Worker → PS shard 0: the BatchNorm batch statistics of (Step, MicroBatch), sent before its gradient (Training/StatisticsLog.cs).</summary>
    Statistics = 3,
    /// <summary>Optimizer state buffer number MicroBatch over [Offset, Offset+Length) at Version (checkpoint and restore).</summary>
    OptimizerState = 4,
    /// <summary>The model's running-statistics buffers (ParameterStore.Buffers) at Version (checkpoint and restore).</summary>
    Buffers = 5,
    /// <summary>A micro-batch gradient as Gradient, its payload encoded (GradientCodec: bf16, fp16, int8 with per-block scales);
    /// Length counts the values, the payload holds GradientCodec.EncodedBytes of them.</summary>
    GradientBf16 = 6,
    GradientFp16 = 7,
    GradientInt8 = 8,
    GradientTopK = 9,
}

/// <summary>
/// Header of one frame. On the wire a frame is: uint32 little-endian header length, this header as a
/// MessagePack array, then (every frame after the Hello) the 16-byte FrameMac tag over the length, the header and the
/// payload, then Length little-endian float32 values (Length × 4 bytes; PayloadBytes for a compressed gradient) whose
/// XxHash3 is Checksum.
/// </summary>
public readonly record struct FrameHeader(
    FrameKind Kind, long Step, int MicroBatch, long Version, int Shard, long Offset, int Length, ulong Checksum, int SenderId)
{
    public const int FieldCount = 9;

    /// <summary>A header never needs more than this (9 fields of at most 9 bytes + array tag); anything larger is malformed.</summary>
    public const int MaxEncodedBytes = 128;

    public long PayloadBytes => GradientCodec.EncodedBytes(Encoding, Offset, Length);

    /// <summary>A micro-batch gradient, whatever its encoding.</summary>
    public bool IsGradient => Kind is FrameKind.Gradient or FrameKind.GradientBf16 or FrameKind.GradientFp16 or FrameKind.GradientInt8 or FrameKind.GradientTopK;

    /// <summary>How the payload encodes its Length values: float32 (None) but for the compressed gradient kinds.</summary>
    public GradientCompression Encoding => Kind switch
    {
        FrameKind.GradientBf16 => GradientCompression.Bf16,
        FrameKind.GradientFp16 => GradientCompression.Fp16,
        FrameKind.GradientInt8 => GradientCompression.Int8,
        FrameKind.GradientTopK => GradientCompression.TopK,
        _ => GradientCompression.None,
    };

    /// <summary>The gradient frame kind of an encoding.</summary>
    public static FrameKind GradientKind(GradientCompression c) => c switch
    {
        GradientCompression.Bf16 => FrameKind.GradientBf16,
        GradientCompression.Fp16 => FrameKind.GradientFp16,
        GradientCompression.Int8 => FrameKind.GradientInt8,
        GradientCompression.TopK => FrameKind.GradientTopK,
        GradientCompression.None => FrameKind.Gradient,
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, "no frame kind for this gradient compression"),
    };

    public override string ToString() =>
        $"{Kind}(step={Step}, microBatch={MicroBatch}, version={Version}, shard={Shard}, range={Offset}+{Length}, sender={SenderId})";

    private static readonly MessagePackSerializerOptions UntrustedOptions =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>Writes the header as a MessagePack array into <paramref name="writer"/>.</summary>
    public void Write(IBufferWriter<byte> writer)
    {
        var w = new MessagePackWriter(writer);
        w.WriteArrayHeader(FieldCount);
        w.Write((byte)Kind);
        w.Write(Step);
        w.Write(MicroBatch);
        w.Write(Version);
        w.Write(Shard);
        w.Write(Offset);
        w.Write(Length);
        w.Write(Checksum);
        w.Write(SenderId);
        w.Flush();
    }

    /// <summary>Reads a header; throws <see cref="InvalidDataException"/> on anything else: another MessagePack shape, a
    /// truncated or overlong encoding, an unknown kind, a negative length or offset. Allocates nothing.</summary>
    public static FrameHeader Read(ReadOnlyMemory<byte> bytes)
    {
        FrameHeader h;
        try
        {
            var r = new MessagePackReader(bytes);
            UntrustedOptions.Security.DepthStep(ref r);
            var count = r.ReadArrayHeader();
            if (count != FieldCount) throw new InvalidDataException($"frame header has {count} fields, expected {FieldCount}");
            var kind = r.ReadByte();
            if (kind > (byte)FrameKind.GradientTopK) throw new InvalidDataException($"frame kind {kind} is unknown");
            h = new FrameHeader((FrameKind)kind, r.ReadInt64(), r.ReadInt32(), r.ReadInt64(), r.ReadInt32(), r.ReadInt64(), r.ReadInt32(), r.ReadUInt64(), r.ReadInt32());
            if (!r.End) throw new InvalidDataException("trailing bytes after the frame header");
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            // MessagePack's own failures (truncation, wrong type, a value out of range) are all "not a header" here.
            throw new InvalidDataException($"frame header is not a {FieldCount}-field MessagePack array of the expected types ({e.GetType().Name}: {e.Message})", e);
        }
        if (h.Length < 0 || h.Offset < 0) throw new InvalidDataException($"frame header has a negative range {h.Offset}+{h.Length}");
        return h;
    }
}
