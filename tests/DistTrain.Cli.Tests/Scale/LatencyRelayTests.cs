// LatencyRelay on loopback: an echo round trip through it takes twice the delay (the closed form; never less, a generous
// tolerance above for a loaded machine), messages in flight are delayed together (a pipe, not stop-and-wait), bytes
// arrive unchanged and in order with EOF passed on, and a receiver that stops reading makes the relay hold no more than
// its bound per direction (and then everything still arrives).
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DistTrain.Cli.Scale;
using Xunit;

namespace DistTrain.Cli.Tests.Scale;

public sealed class LatencyRelayTests
{
    private static readonly IPEndPoint Any = new(IPAddress.Loopback, 0);

    /// <summary>A listener that echoes every connection's bytes until EOF, then closes its side.</summary>
    private sealed class EchoServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

        public EchoServer()
        {
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (true)
                {
                    Socket s;
                    try { s = await _listener.AcceptSocketAsync(); }
                    catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }
                    _ = Task.Run(async () =>
                    {
                        using (s)
                        {
                            s.NoDelay = true;
                            var buffer = new byte[32 * 1024];
                            try
                            {
                                int n;
                                while ((n = await s.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                                    for (int sent = 0; sent < n;) sent += await s.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None);
                                s.Shutdown(SocketShutdown.Send);
                            }
                            catch (SocketException) { }
                        }
                    });
                }
            });
        }

        public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

        public void Dispose() => _listener.Stop();
    }

    private static Socket Connect(IPEndPoint to)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        s.Connect(to);
        return s;
    }

    private static void ReadExactly(Socket s, Span<byte> into)
    {
        for (int got = 0; got < into.Length;)
        {
            int n = s.Receive(into[got..]);
            if (n == 0) throw new EndOfStreamException($"EOF after {got} of {into.Length} bytes");
            got += n;
        }
    }

    [Fact]
    public void An_echo_round_trip_takes_twice_the_delay()
    {
        var delay = TimeSpan.FromMilliseconds(60);
        using var echo = new EchoServer();
        using var relay = new LatencyRelay(Any, echo.Endpoint, delay, 1 << 20);
        using var client = Connect(relay.Endpoint);
        var rtts = new List<double>();
        var message = new byte[100];
        var back = new byte[100];
        for (int i = 0; i < 5; i++)
        {
            message.AsSpan().Fill((byte)i);
            var clock = Stopwatch.StartNew();
            client.Send(message);
            ReadExactly(client, back);
            rtts.Add(clock.Elapsed.TotalMilliseconds);
            Assert.Equal(message, back);
        }
        // Each direction waits the delay once: 2 × 60 ms, never less; the tolerance above is for timers on a loaded host.
        Assert.All(rtts, r => Assert.True(r >= 2 * delay.TotalMilliseconds, $"round trip {r:F1} ms < {2 * delay.TotalMilliseconds} ms"));
        double median = rtts.Order().ElementAt(rtts.Count / 2);
        Assert.InRange(median, 2 * delay.TotalMilliseconds, 2 * delay.TotalMilliseconds + 90);
    }

    [Fact]
    public async Task Messages_in_flight_are_delayed_together_not_one_after_another()
    {
        var delay = TimeSpan.FromMilliseconds(60);
        const int messages = 20;
        using var echo = new EchoServer();
        using var relay = new LatencyRelay(Any, echo.Endpoint, delay, 1 << 20);
        using var client = Connect(relay.Endpoint);
        var sent = new double[messages];
        var clock = Stopwatch.StartNew();
        var sender = Task.Run(() =>
        {
            for (int i = 0; i < messages; i++)
            {
                sent[i] = clock.Elapsed.TotalMilliseconds;
                client.Send(BitConverter.GetBytes(i));
                Thread.Sleep(10);
            }
        });
        var latency = new double[messages];
        var back = new byte[4];
        for (int i = 0; i < messages; i++)
        {
            ReadExactly(client, back);
            double now = clock.Elapsed.TotalMilliseconds;
            Assert.Equal(i, BitConverter.ToInt32(back));
            latency[i] = now - sent[i];
        }
        await sender;
        // A pipe: every message's round trip is 2 × the delay, however many are in flight (stop-and-wait would make the
        // last one wait ~20 × 60 ms).
        Assert.All(latency, l => Assert.InRange(l, 2 * delay.TotalMilliseconds, 2 * delay.TotalMilliseconds + 150));
    }

    [Fact]
    public async Task Bytes_arrive_unchanged_and_in_order_and_eof_is_passed_on()
    {
        using var echo = new EchoServer();
        using var relay = new LatencyRelay(Any, echo.Endpoint, TimeSpan.FromMilliseconds(2), 256 * 1024);
        using var client = Connect(relay.Endpoint);
        var payload = new byte[3 << 20];
        new Random(17).NextBytes(payload);
        var writer = Task.Run(() =>
        {
            var rng = new Random(5);
            for (int at = 0; at < payload.Length;)
            {
                int n = Math.Min(payload.Length - at, 1 + rng.Next(100_000));
                at += client.Send(payload, at, n, SocketFlags.None);
            }
            client.Shutdown(SocketShutdown.Send);
        });
        var back = new byte[payload.Length];
        ReadExactly(client, back);
        await writer;
        Assert.True(payload.AsSpan().SequenceEqual(back), "the bytes came back changed or out of order");
        // The echo server saw EOF through the relay and closed its side, which came back as EOF too.
        Assert.Equal(0, client.Receive(new byte[1]));
        Assert.Equal(2L * payload.Length, relay.BytesRelayed);
        Assert.Equal(1, relay.Connections);
    }

    [Fact]
    public async Task A_receiver_that_stops_reading_makes_the_relay_hold_no_more_than_its_bound()
    {
        const int bound = 256 * 1024;
        using var sink = new TcpListener(IPAddress.Loopback, 0);
        sink.Start();
        using var relay = new LatencyRelay(Any, (IPEndPoint)sink.LocalEndpoint, TimeSpan.FromMilliseconds(1), bound);
        using var client = Connect(relay.Endpoint);
        using var receiver = sink.AcceptSocket(); // not read yet: the kernel's buffers fill, then the relay's
        var payload = new byte[40 << 20];
        new Random(3).NextBytes(payload);
        var writer = Task.Run(() =>
        {
            for (int at = 0; at < payload.Length;) at += client.Send(payload, at, Math.Min(1 << 20, payload.Length - at), SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
        });
        var wait = Stopwatch.StartNew();
        while (relay.PeakBufferedBytes < bound - LatencyRelay.ReadSize && wait.Elapsed < TimeSpan.FromSeconds(8)) Thread.Sleep(20);
        Thread.Sleep(200);
        // It filled up to its bound (one read's worth below at most) and no further.
        Assert.InRange(relay.PeakBufferedBytes, bound - LatencyRelay.ReadSize, bound);
        var back = new byte[payload.Length];
        ReadExactly(receiver, back);
        await writer;
        Assert.True(payload.AsSpan().SequenceEqual(back), "the bytes arrived changed or out of order");
        Assert.Equal(0, receiver.Receive(new byte[1]));
        Assert.InRange(relay.PeakBufferedBytes, 1, bound);
    }
}
