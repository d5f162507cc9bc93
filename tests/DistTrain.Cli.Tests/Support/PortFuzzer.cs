// Seeded fuzz cases for one listening port, as a stranger sends them: garbage, truncated frames, length prefixes and
// header lengths far beyond what follows, frames tagged under a wrong key, and half-sent frames that then stall. Each
// case is one connection; the count of bytes sent is kept per port (to bound the listener's memory growth by it).
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Tests;

namespace DistTrain.Cli.Tests.Support;

internal sealed class PortFuzzer(IPEndPoint target, bool dataPlane, int seed)
{
    private readonly Random _rng = new(seed);

    public IPEndPoint Target => target;
    public bool IsDataPlane => dataPlane;
    public long BytesSent { get; private set; }
    public int Cases { get; private set; }
    /// <summary>Connections left half-sent and open (the listener must close them: hello / read timeouts).</summary>
    public List<Socket> Held { get; } = [];

    /// <summary>Runs <paramref name="count"/> cases one after another.</summary>
    public void Run(int count)
    {
        for (int i = 0; i < count; i++)
        {
            int kind = _rng.Next(dataPlane ? 8 : 6);
            byte[] bytes = dataPlane ? DataPlaneCase(kind) : AkkaCase(kind);
            bool hold = kind == (dataPlane ? 7 : 5) && Held.Count < 4;
            var s = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 100, SendTimeout = 2000, NoDelay = true };
            try
            {
                s.Connect(target);
                int sent = 0;
                try { sent = s.Send(bytes); } catch (SocketException) { /* the listener closed first: a refusal */ }
                BytesSent += sent;
                Cases++;
                if (hold) { Held.Add(s); continue; }
                Drain(s);
            }
            catch (SocketException) { Cases++; }
            s.Dispose();
        }
    }

    /// <summary>Reads what the listener says back (a challenge, or nothing) until it closes or 100 ms pass.</summary>
    private static void Drain(Socket s)
    {
        var buffer = new byte[4096];
        try { while (s.Receive(buffer) > 0) { } }
        catch (SocketException) { }
    }

    private byte[] Random(int min, int max)
    {
        var b = new byte[_rng.Next(min, max)];
        _rng.NextBytes(b);
        return b;
    }

    private FrameHeader RandomHeader(int sender) => new((FrameKind)_rng.Next(0, 10), _rng.Next(0, 4), _rng.Next(0, 8), _rng.Next(0, 4),
        _rng.Next(0, 3), _rng.Next(0, 1 << 20), _rng.Next(0, 4096), (ulong)_rng.NextInt64(), sender);

    private byte[] DataPlaneCase(int kind)
    {
        int sender = _rng.Next(0, int.MaxValue);
        switch (kind)
        {
            case 0: return Random(1, 65536);                                                  // garbage
            case 1:                                                                           // a Hello cut short
                var hello = RawDataPlanePeer.Frame(RawDataPlanePeer.Hello(sender));
                return [.. hello.AsSpan(0, _rng.Next(1, hello.Length)), .. Random(0, 16)];
            case 2:                                                                           // a length prefix out of range
                int[] prefixes = [-1, 0, 129, 4096, int.MaxValue, int.MinValue, _rng.Next()];
                var bad = new byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(bad, prefixes[_rng.Next(prefixes.Length)]);
                return [.. bad, .. Random(0, 2048)];
            case 3:                                                                           // a Hello under another key, then a tagged frame
            {
                var key = DataPlaneKey.Create();
                var nonce = RandomNumberGenerator.GetBytes(DataPlaneAuth.NonceBytes);
                var proof = new byte[DataPlaneAuth.ProofBytes];
                // The listener's nonce is unknown to a stranger that does not read the challenge: any 32 bytes.
                var serverNonce = RandomNumberGenerator.GetBytes(DataPlaneAuth.NonceBytes);
                DataPlaneAuth.ClientProof(key, serverNonce, nonce, sender, DataPlaneAuth.FlagFrameMac, proof);
                using var mac = DataPlaneAuth.FrameMacOf(key, serverNonce, nonce, sender, DataPlaneAuth.FlagFrameMac);
                var header = RandomHeader(sender) with { Kind = (FrameKind)_rng.Next(1, 10), Length = _rng.Next(0, 16384) };
                var payload = Random(header.Length * 4, header.Length * 4 + 1);
                var head = RawDataPlanePeer.Frame(header);
                var tag = new byte[FrameMac.TagBytes];
                mac.Compute(head, payload, tag);
                return [.. RawDataPlanePeer.Frame(RawDataPlanePeer.Hello(sender)), .. nonce, .. proof, .. RawDataPlanePeer.WithTag(head, tag, payload)];
            }
            case 4:                                                                           // a length bomb: a header claiming 1 GB, 4 KB sent
            {
                var header = RandomHeader(sender) with { Kind = FrameKind.Parameters, Length = 1 << 28 };
                return [.. RawDataPlanePeer.Frame(header), .. new byte[FrameMac.TagBytes], .. Random(1024, 65536)];
            }
            case 5:                                                                           // a frame with a random header, no Hello
            {
                var header = RandomHeader(sender);
                return [.. RawDataPlanePeer.Frame(header), .. Random(0, 4096)];
            }
            case 6:                                                                           // a Hello with bytes flipped
            {
                var h = RawDataPlanePeer.Frame(RawDataPlanePeer.Hello(sender));
                for (int f = _rng.Next(1, 4); f > 0; f--) h[_rng.Next(h.Length)] ^= (byte)(1 << _rng.Next(8));
                return [.. h, .. Random(0, 128)];
            }
            default:                                                                          // half a Hello, then silence (held)
            {
                var h = RawDataPlanePeer.Frame(RawDataPlanePeer.Hello(sender));
                return [.. h, .. Random(1, DataPlaneAuth.HelloAuthBytes - 1)];
            }
        }
    }

    private byte[] AkkaCase(int kind)
    {
        var len = new byte[4];
        switch (kind)
        {
            case 0: return Random(1, 4096);                                                   // garbage
            case 1:                                                                           // a length-prefixed PDU of random bytes
            {
                var body = Random(1, 2048);
                BinaryPrimitives.WriteInt32BigEndian(len, body.Length);
                return [.. len, .. body];
            }
            case 2:                                                                           // a length prefix far beyond the frame size
                BinaryPrimitives.WriteInt32BigEndian(len, _rng.Next(2) == 0 ? int.MaxValue : _rng.Next(128_001, int.MaxValue));
                return [.. len, .. Random(0, 4096)];
            case 3:                                                                           // a negative length prefix
                BinaryPrimitives.WriteInt32BigEndian(len, -_rng.Next(1, int.MaxValue));
                return [.. len, .. Random(0, 64)];
            case 4:                                                                           // a PDU cut short
            {
                BinaryPrimitives.WriteInt32BigEndian(len, 1000);
                return [.. len, .. Random(1, 999)];
            }
            default:                                                                          // a length prefix, part of its PDU, then silence (held)
                BinaryPrimitives.WriteInt32BigEndian(len, 4000);
                return [.. len, .. Random(1, 100)];
        }
    }
}
