// The latency half of an emulated link, in user space because this kernel has no netem: a TCP relay that accepts on one
// endpoint, connects each accepted connection to a target, and forwards both directions' bytes unchanged and in order,
// each chunk released Delay after it arrived. It is a pipe, not stop-and-wait: many chunks are in flight at once, up to
// BufferBytes per direction of a connection (then it stops reading and TCP pushes back on the sender), so throughput
// stays bounded by the shaped links (tbf) and by BufferBytes per Delay, like a TCP window. Relies on System.Net.Sockets only.
using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace DistTrain.Cli.Scale;

public sealed class LatencyRelay : IDisposable
{
    /// <summary>Bytes read from a socket at once; a chunk is at most this big.</summary>
    public const int ReadSize = 64 * 1024;

    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly long _delayTicks;
    private readonly int _bufferBytes;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _open = [];
    private long _bytes, _peak;
    private int _connections;

    /// <summary>Listens on <paramref name="listen"/> (port 0 = any) and relays each connection to <paramref name="target"/>,
    /// delaying each direction by <paramref name="delay"/> and holding at most <paramref name="bufferBytes"/> (≥ ReadSize) per direction.</summary>
    public LatencyRelay(IPEndPoint listen, IPEndPoint target, TimeSpan delay, int bufferBytes)
    {
        if (delay < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(delay), delay, "The delay cannot be negative.");
        if (bufferBytes < ReadSize) throw new ArgumentOutOfRangeException(nameof(bufferBytes), bufferBytes, $"Hold at least {ReadSize} bytes per direction.");
        (_target, Delay, _bufferBytes) = (target, delay, bufferBytes);
        _delayTicks = (long)(delay.TotalSeconds * Stopwatch.Frequency);
        _listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(listen);
            _listener.Listen(512);
        }
        catch (SocketException e)
        {
            _listener.Dispose();
            throw new InvalidOperationException($"The latency relay cannot listen on {listen} ({e.SocketErrorCode}): the port is taken; run again (ports are picked anew).", e);
        }
        Endpoint = (IPEndPoint)_listener.LocalEndPoint!;
        _ = AcceptLoop();
    }

    /// <summary>Where the relay listens (the actual port when 0 was given).</summary>
    public IPEndPoint Endpoint { get; }

    public TimeSpan Delay { get; }

    /// <summary>Bytes forwarded so far, both directions of every connection.</summary>
    public long BytesRelayed => Interlocked.Read(ref _bytes);

    /// <summary>The most bytes one direction of one connection held at once (its chunks' buffers): at most the buffer bound.</summary>
    public long PeakBufferedBytes => Interlocked.Read(ref _peak);

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
            Interlocked.Increment(ref _connections);
            _ = Serve(client);
        }
    }

    private async Task Serve(Socket client)
    {
        var server = new Socket(_target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        lock (_open) { _open.Add(client); _open.Add(server); }
        try
        {
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
            {
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                await server.ConnectAsync(_target, timeout.Token);
            }
            // Either direction failing (a reset, the relay stopping) ends both: closing the sockets wakes the other pump.
            var up = Pump(client, server);
            var down = Pump(server, client);
            var first = await Task.WhenAny(up, down);
            if (first.IsFaulted) Close(client, server);
            await Task.WhenAll(up, down).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException) { }
        finally
        {
            Close(client, server);
            lock (_open) { _open.Remove(client); _open.Remove(server); }
        }
    }

    private static void Close(Socket a, Socket b)
    {
        a.Dispose();
        b.Dispose();
    }

    /// <summary>One direction: a reader that takes chunks off <paramref name="from"/> as fast as the buffer bound allows, stamped
    /// with when they arrived, and a writer that sends each to <paramref name="to"/> once its delay has passed. EOF travels the
    /// same way (a half-close after the delay).</summary>
    private async Task Pump(Socket from, Socket to)
    {
        var queue = Channel.CreateUnbounded<Chunk>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var budget = new ByteBudget(_bufferBytes);
        var writer = Drain(queue.Reader, from, to, budget);
        var buffer = new byte[ReadSize];
        long held = 0;
        try
        {
            while (true)
            {
                await budget.TakeAsync(ReadSize, _stop.Token); // room for the largest read before reading it
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                long arrived = Stopwatch.GetTimestamp();
                if (n == 0)
                {
                    budget.Give(ReadSize);
                    queue.Writer.TryWrite(new Chunk(null, 0, arrived + _delayTicks));
                    break;
                }
                var copy = ArrayPool<byte>.Shared.Rent(n);
                buffer.AsSpan(0, n).CopyTo(copy);
                budget.Give(ReadSize - Math.Min(copy.Length, ReadSize));
                held = budget.Held;
                long seen;
                while (held > (seen = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, held, seen) != seen) { }
                queue.Writer.TryWrite(new Chunk(copy, n, arrived + _delayTicks));
            }
        }
        finally { queue.Writer.TryComplete(); }
        await writer;
    }

    private async Task Drain(ChannelReader<Chunk> queue, Socket from, Socket to, ByteBudget budget)
    {
        try
        {
            await foreach (var chunk in queue.ReadAllAsync(_stop.Token))
            {
                // The timer's clock is coarser than Stopwatch's and may fire a fraction of a millisecond early: wait again
                // until the chunk's time has really come, so a chunk is never released early.
                for (long wait; (wait = chunk.Due - Stopwatch.GetTimestamp()) > 0;)
                    await Task.Delay(Math.Max(1, (int)Math.Ceiling(wait * 1000.0 / Stopwatch.Frequency)), _stop.Token);
                if (chunk.Buffer is null)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                try
                {
                    for (int sent = 0; sent < chunk.Count;)
                        sent += await to.SendAsync(chunk.Buffer.AsMemory(sent, chunk.Count - sent), SocketFlags.None, _stop.Token);
                    Interlocked.Add(ref _bytes, chunk.Count);
                }
                finally
                {
                    budget.Give(Math.Min(chunk.Buffer.Length, ReadSize));
                    ArrayPool<byte>.Shared.Return(chunk.Buffer);
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The far side went away: the connection is dead both ways; closing both sockets ends the reader and the other direction.
            budget.Fail();
            Close(from, to);
            throw;
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        Socket[] open;
        lock (_open) open = [.. _open];
        foreach (var s in open) s.Dispose();
    }

    private readonly record struct Chunk(byte[]? Buffer, int Count, long Due);

    /// <summary>A byte budget one reader takes from and one writer gives back to; the reader waits while it is short.</summary>
    private sealed class ByteBudget(long capacity)
    {
        private readonly object _gate = new();
        private readonly long _capacity = capacity;
        private long _free = capacity;
        private bool _failed;
        private TaskCompletionSource? _waiter;

        /// <summary>Bytes taken and not yet given back.</summary>
        public long Held { get { lock (_gate) return _capacity - _free; } }

        public async ValueTask TakeAsync(int bytes, CancellationToken cancel)
        {
            while (true)
            {
                TaskCompletionSource waiter;
                lock (_gate)
                {
                    if (_failed) throw new OperationCanceledException("The relay's other side closed.");
                    if (_free >= bytes) { _free -= bytes; return; }
                    waiter = _waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                await waiter.Task.WaitAsync(cancel);
            }
        }

        public void Give(long bytes)
        {
            TaskCompletionSource? waiter;
            lock (_gate) { _free += bytes; (waiter, _waiter) = (_waiter, null); }
            waiter?.TrySetResult();
        }

        public void Fail()
        {
            TaskCompletionSource? waiter;
            lock (_gate) { _failed = true; (waiter, _waiter) = (_waiter, null); }
            waiter?.TrySetResult();
        }
    }
}
