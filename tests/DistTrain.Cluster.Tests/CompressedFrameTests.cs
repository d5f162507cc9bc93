// Compressed gradient frames over the data plane (127.0.0.1, frame MACs on): the listener receives the encoded bytes,
// checks tag and checksum over them, and hands the handler the decoded values — GradientCodec.RoundTrip of the sender's
// gradient at that range, bit for bit; a frame whose checksum does not match its encoded bytes is dropped and counted.
using System.Net;
using System.Runtime.InteropServices;
using DistTrain.Cluster.DataPlane;
using DistTrain.Training.Steps;
using Xunit;

namespace DistTrain.Cluster.Tests;

public sealed class CompressedFrameTests
{
    private sealed class Handler(int length) : IFrameHandler
    {
        public readonly float[] Staging = new float[length];
        public readonly List<(FrameHeader Header, float[]? Values, DropReason? Drop)> Log = [];
        public readonly SemaphoreSlim Events = new(0);

        public DropReason? Rent(FrameHeader header, out Span<float> destination)
        {
            destination = Staging.AsSpan(0, Math.Min(header.Length, Staging.Length));
            return header.IsGradient ? null : DropReason.Rejected;
        }

        public void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload)
        {
            lock (Log) Log.Add((header, payload.ToArray(), null));
            Events.Release();
        }

        public void OnDropped(in FrameHeader header, DropReason reason)
        {
            lock (Log) Log.Add((header, null, reason));
            Events.Release();
        }

        public void Wait() => Assert.True(Events.Wait(TimeSpan.FromSeconds(30)), "data-plane event did not arrive");
    }

    private static readonly DataPlaneKey Key = DataPlaneKey.Create();

    [Theory]
    [InlineData(GradientCompression.Bf16)]
    [InlineData(GradientCompression.Fp16)]
    [InlineData(GradientCompression.Int8)]
    [InlineData(GradientCompression.TopK)]
    public void An_encoded_frame_arrives_decoded_and_a_corrupt_one_is_dropped(GradientCompression c)
    {
        const int n = 100_000, lo = 1000, len = 70_000; // a frame that starts and ends inside int8 blocks
        var rng = new Random(5);
        var g = new float[n];
        for (int i = 0; i < n; i++) g[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-6, 0)));
        var want = g.ToArray();
        GradientCodec.RoundTrip(c, want);

        var handler = new Handler(len);
        using var server = new DataPlaneServer(IPAddress.Loopback, 0, handler, Key);
        using var client = DataPlaneClient.Connect("127.0.0.1", server.Port, senderId: 3, Key.PeerKey(3), TimeSpan.FromSeconds(10));
        var encoded = new byte[GradientCodec.EncodedBytes(c, lo, len)];
        GradientCodec.Encode(c, g, lo, len, encoded);
        var header = new FrameHeader(FrameHeader.GradientKind(c), 4, 1, 4, 0, lo, len, 0, 0);
        client.SendEncoded(header, encoded);
        handler.Wait();
        // The same frame with a checksum that does not match its encoded bytes (the tag is right: it is the checksum that fails).
        client.SendRaw(header with { Checksum = System.IO.Hashing.XxHash3.HashToUInt64(encoded) ^ 1, SenderId = 3 }, encoded);
        handler.Wait();

        var (h, values, drop) = handler.Log[0];
        Assert.Null(drop);
        Assert.Equal((c, lo, len), (h.Encoding, h.Offset, h.Length));
        Assert.Equal(MemoryMarshal.AsBytes(want.AsSpan(lo, len)).ToArray(), MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        Assert.Equal(DropReason.BadChecksum, handler.Log[1].Drop);
        Assert.Equal(encoded.Length, server.Stats.BytesReceived);
    }
}
