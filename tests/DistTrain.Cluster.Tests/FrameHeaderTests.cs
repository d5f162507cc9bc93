// The data-plane frame header on its own: every field round-trips at its extremes within MaxEncodedBytes, and
// anything else — negative length or offset, unknown kinds, other field counts, trailing bytes, other MessagePack
// shapes, every truncation, random bytes — is one InvalidDataException, never another exception.
using System.Buffers;
using MessagePack;
using DistTrain.Cluster.DataPlane;
using Xunit;

namespace DistTrain.Cluster.Tests;

public sealed class FrameHeaderTests
{
    private static byte[] Encode(FrameHeader h)
    {
        var w = new ArrayBufferWriter<byte>();
        h.Write(w);
        return w.WrittenSpan.ToArray();
    }

    /// <summary>A 9-field array whose fields are written as given (any MessagePack types).</summary>
    private static byte[] Raw(int count, Action<MessagePackWriter> fields)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        w.WriteArrayHeader(count);
        fields(w);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static readonly FrameHeader Extreme = new(FrameKind.Buffers, long.MaxValue, int.MaxValue, long.MinValue, int.MinValue, long.MaxValue, int.MaxValue, ulong.MaxValue, int.MinValue);

    [Fact]
    public void Every_field_round_trips_at_its_extremes_within_the_encoded_bound()
    {
        foreach (var h in new[] { Extreme, new FrameHeader(FrameKind.Hello, 0, 0, 0, 0, 0, 0, 0, 0), new FrameHeader(FrameKind.Gradient, 12, 3, 11, 1, 4096, 65536, 0xDEADBEEFCAFEF00D, 7), new FrameHeader(FrameKind.GradientInt8, 12, 3, 11, 1, 4000, 600, 0xDEADBEEFCAFEF00D, 7) })
        {
            var bytes = Encode(h);
            Assert.InRange(bytes.Length, 1, FrameHeader.MaxEncodedBytes);
            Assert.Equal(h, FrameHeader.Read(bytes));
        }
    }

    public static TheoryData<string, byte[]> Refused() => new()
    {
        { "negative length", Encode(new FrameHeader(FrameKind.Gradient, 1, 0, 0, 0, 0, -1, 0, 1)) },
        { "length int.MinValue", Encode(new FrameHeader(FrameKind.Parameters, 1, 0, 0, 0, 0, int.MinValue, 0, 1)) },
        { "negative offset", Encode(new FrameHeader(FrameKind.Gradient, 1, 0, 0, 0, -16, 16, 0, 1)) },
        { "kind 10", Encode(new FrameHeader((FrameKind)10, 1, 0, 0, 0, 0, 0, 0, 1)) },
        { "kind 255", Encode(new FrameHeader((FrameKind)255, 1, 0, 0, 0, 0, 0, 0, 1)) },
        { "kind 300", Raw(9, w => { w.Write(300); for (int i = 0; i < 8; i++) w.Write(0); }) },
        { "negative kind", Raw(9, w => { w.Write(-1); for (int i = 0; i < 8; i++) w.Write(0); }) },
        { "8 fields", Raw(8, w => { for (int i = 0; i < 8; i++) w.Write(1); }) },
        { "10 fields", Raw(10, w => { for (int i = 0; i < 10; i++) w.Write(1); }) },
        { "a string field", Raw(9, w => { w.Write(1); w.Write("step"); for (int i = 0; i < 7; i++) w.Write(0); }) },
        { "a length beyond int", Raw(9, w => { w.Write(1); for (int i = 0; i < 5; i++) w.Write(0); w.Write(1L << 40); w.Write(0); w.Write(1); }) },
        { "trailing byte", [.. Encode(new FrameHeader(FrameKind.Gradient, 1, 0, 0, 0, 0, 4, 0, 1)), 0x00] },
        { "a map", [0x81, 0x01, 0x02] },
        { "nil", [0xC0] },
        { "never-used byte", [0xC1] },
        { "empty", [] },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Anything_but_a_valid_header_is_one_clear_error(string what, byte[] bytes)
    {
        var e = Assert.Throws<InvalidDataException>(() => FrameHeader.Read(bytes));
        Assert.False(string.IsNullOrEmpty(e.Message), what);
    }

    [Fact]
    public void Every_truncation_and_random_bytes_fail_only_with_InvalidDataException()
    {
        var full = Encode(Extreme);
        for (int n = 0; n < full.Length; n++)
            Assert.Throws<InvalidDataException>(() => FrameHeader.Read(full.AsMemory(0, n)));

        // Random bytes and single-byte mutations of a valid header: either a header whose range is non-negative, or the one error.
        var rng = new Random(15);
        var valid = Encode(new FrameHeader(FrameKind.Gradient, 7, 2, 6, 1, 1024, 4096, 0x1234, 9));
        for (int i = 0; i < 20_000; i++)
        {
            byte[] bytes;
            if (i % 2 == 0) { bytes = new byte[rng.Next(0, FrameHeader.MaxEncodedBytes + 1)]; rng.NextBytes(bytes); }
            else { bytes = valid.ToArray(); bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256); }
            try
            {
                var h = FrameHeader.Read(bytes);
                Assert.True(h.Length >= 0 && h.Offset >= 0 && h.Kind <= FrameKind.GradientTopK, h.ToString());
            }
            catch (InvalidDataException) { }
        }
    }
}
