// A stranger at a node's ports: it holds no job key and no certificate the cluster CA signed. On a data-plane listener it
// reads the challenge and tries frames a peer could send — a restore claiming to be the coordinator, a parameter push
// claiming to be a shard, a gradient chunk — without a Hello, with a proof under another key and frames tagged with
// that key, with no proof and no tag. On an Akka port it tries a plain-text association and TLS handshakes without a
// certificate and with one a foreign CA signed. Each attempt must end with the listener closing the connection having
// sent nothing but its challenge: no proof back, no byte of a parameter, no Akka handshake.
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DistTrain.Cluster.DataPlane;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Tests;

namespace DistTrain.Cli.Tests.Support;

internal static class Stranger
{
    /// <summary>How long a listener may take to hang up on a stranger (the hello timeout is 10 s; a refusal is immediate).</summary>
    private const int HangUpMs = 8_000;

    /// <summary>Whether <paramref name="ep"/> is a data-plane listener: it greets every connection with its DTDP challenge
    /// (an Akka port over TLS waits for the client's hello instead).</summary>
    public static bool IsDataPlane(IPEndPoint ep, int waitMs = 1500)
    {
        using var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = waitMs };
        s.Connect(ep);
        var magic = new byte[4];
        try { return s.Receive(magic) == 4 && magic.AsSpan().SequenceEqual(DataPlaneAuth.Magic); }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock) { return false; }
    }

    /// <summary>Every frame attempt on one data-plane listener; returns one line per attempt that was NOT refused (empty = all refused).</summary>
    public static List<string> AttackDataPlane(IPEndPoint ep)
    {
        int coordinator = JobMapping.SenderIdOf("coordinator"), shard = JobMapping.SenderIdOf("stranger/ps0"), worker = JobMapping.SenderIdOf("stranger/w0");
        var values = Enumerable.Range(0, 64).Select(i => 1000f + i).ToArray();
        var bytes = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        ulong checksum = System.IO.Hashing.XxHash3.HashToUInt64(bytes);
        FrameHeader Restore(int sender) => new(FrameKind.Parameters, 0, 0, 0, 0, 0, values.Length, checksum, sender);
        FrameHeader Push(int sender) => new(FrameKind.Parameters, 0, 0, 1, 0, 0, values.Length, checksum, sender);
        FrameHeader Gradient(int sender) => new(FrameKind.Gradient, 0, 0, 0, 0, 0, values.Length, checksum, sender);
        var zeroTag = new byte[FrameMac.TagBytes];
        var failures = new List<string>();

        void Attempt(string what, Func<RawDataPlanePeer, byte[]> attack)
        {
            using var peer = RawDataPlanePeer.Connect(ep, readChallenge: true, receiveTimeoutMs: HangUpMs);
            try { peer.Send(attack(peer)); }
            catch (SocketException) { /* closed while we wrote: refused */ }
            var why = RefusedSilently(peer.Socket);
            if (why is not null) failures.Add($"{ep} {what}: {why}");
        }

        // No Hello at all: a restore frame (the stranger of the issue replaced a shard's weights at version 0 this way).
        Attempt("restore frame without a Hello", _ => RawDataPlanePeer.WithTag(RawDataPlanePeer.Frame(Restore(coordinator)), zeroTag, bytes));
        Attempt("gradient frame without a Hello", _ => RawDataPlanePeer.WithTag(RawDataPlanePeer.Frame(Gradient(worker)), zeroTag, bytes));
        // A Hello proved with another key, then frames tagged under that key (a wrong MAC for this listener).
        foreach (var (what, sender, frame) in new[] { ("restore", coordinator, Restore(coordinator)), ("parameter push", shard, Push(shard)), ("gradient", worker, Gradient(worker)) })
            Attempt($"{what} frame after a Hello under another key, tagged with that key", peer =>
            {
                var wrong = DataPlaneKey.Create();
                var nonce = RandomNumberGenerator.GetBytes(DataPlaneAuth.NonceBytes);
                var proof = new byte[DataPlaneAuth.ProofBytes];
                DataPlaneAuth.ClientProof(wrong, peer.ServerNonce, nonce, sender, DataPlaneAuth.FlagFrameMac, proof);
                using var mac = DataPlaneAuth.FrameMacOf(wrong, peer.ServerNonce, nonce, sender, DataPlaneAuth.FlagFrameMac);
                var head = RawDataPlanePeer.Frame(frame);
                var tag = new byte[FrameMac.TagBytes];
                mac.Compute(head, bytes, tag);
                return [.. RawDataPlanePeer.Frame(RawDataPlanePeer.Hello(sender)), .. nonce, .. proof, .. RawDataPlanePeer.WithTag(head, tag, bytes)];
            });
        // A Hello with no proof after it, then a restore frame with no tag (its bytes are read as the proof).
        Attempt("restore frame after a Hello without proof, untagged", _ =>
            [.. RawDataPlanePeer.Frame(RawDataPlanePeer.Hello(coordinator)), .. RawDataPlanePeer.Frame(Restore(coordinator), bytes)]);
        return failures;
    }

    /// <summary>Null when the listener closes <paramref name="s"/> without sending a byte; else what it did instead.</summary>
    private static string? RefusedSilently(Socket s)
    {
        var buffer = new byte[256];
        try
        {
            int n = s.Receive(buffer);
            return n == 0 ? null : $"the listener sent {n} byte(s) to a stranger";
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return null; }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
        {
            return $"the listener kept the connection open for {HangUpMs / 1000} s";
        }
    }

    /// <summary>Association attempts on an Akka port with TLS on; one line per attempt that was NOT refused.</summary>
    public static List<string> AttackAkka(IPEndPoint ep, X509Certificate2 foreignCertificate)
    {
        var failures = new List<string>();
        // Plain text: the start of an Akka association (a length-prefixed protobuf PDU) where TLS is expected.
        using (var s = Connect(ep))
        {
            try { s.Send([0, 0, 0, 12, 0x0A, 0x0A, 0x0A, 0x08, 0x0A, 0x06, 0x61, 0x6B, 0x6B, 0x61, 0x2E, 0x74]); } catch (SocketException) { }
            if (RefusedSilently(s) is { } why) failures.Add($"{ep} plain-text association: {why}");
        }
        foreach (var (what, cert) in new (string, X509Certificate2?)[] { ("TLS without a client certificate", null), ("TLS with a certificate of a foreign CA", foreignCertificate) })
            if (TlsRefused(ep, cert) is { } why) failures.Add($"{ep} {what}: {why}");
        return failures;
    }

    private static Socket Connect(IPEndPoint ep)
    {
        var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = HangUpMs, SendTimeout = HangUpMs };
        s.Connect(ep);
        return s;
    }

    /// <summary>Null when the node refuses a TLS client presenting <paramref name="cert"/> (the handshake fails, or the node
    /// closes the stream before a byte of application data); else what happened.</summary>
    private static string? TlsRefused(IPEndPoint ep, X509Certificate2? cert)
    {
        using var socket = Connect(ep);
        using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            tls.AuthenticateAsClient(new SslClientAuthenticationOptions
            {
                TargetHost = ep.Address.ToString(),
                ClientCertificates = cert is null ? null : [cert],
                // The stranger takes any server: what is tested is whether the node takes the stranger.
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
                LocalCertificateSelectionCallback = cert is null ? null : (_, _, _, _, _) => cert,
            });
            // TLS 1.3 finishes the client's side before the server has checked the client's certificate: the refusal
            // arrives as an alert or a close at the first read. An Akka association would start with the client's PDU.
            tls.Write([0, 0, 0, 4, 1, 2, 3, 4]);
            tls.Flush();
            var buffer = new byte[64];
            int n = tls.Read(buffer);
            return n == 0 ? null : $"the node sent {n} byte(s) of application data over TLS";
        }
        catch (AuthenticationException) { return null; }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut or SocketError.WouldBlock })
        {
            return $"the node kept the TLS connection open for {HangUpMs / 1000} s";
        }
        catch (IOException) { return null; }
        catch (SocketException) { return null; }
    }
}
