// `disttrain bench transport`: moves 1/4/16 MiB float tensors between this process and a child
// `disttrain` over the data plane on 127.0.0.1 (one way and round trip), reports MB/s, CPU seconds
// per GB for sender and receiver, allocation per transfer, and iperf3 on the same loopback for scale.
// Connections authenticate with keys derived from a fresh listener key (handed to the child on its stdin); --auth both
// (the default) measures frames with their tag (FrameMac) beside frames without it, size by size in one sitting. With
// iperf3, each one-way lane is bracketed by a short iperf3 -l 1M run before and after it, and reported as a fraction of them.
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using DistTrain.Cli.Bench;
using DistTrain.Cluster.DataPlane;

namespace DistTrain.Cli.Commands;

public sealed class BenchTransportCommand : ICommandFactory
{
    public string? Parent => "bench";

    public Command Create()
    {
        var sizes = new Option<string>("--sizes") { Description = "Tensor sizes in MiB, comma-separated.", DefaultValueFactory = _ => "1,4,16" };
        var megabytes = new Option<int>("--megabytes") { Description = "MiB moved per size and direction (bounds the run).", DefaultValueFactory = _ => 1024 };
        var iperf = new Option<bool>("--no-iperf") { Description = "Skip the iperf3 comparison." };
        var auth = new Option<string>("--auth")
        {
            Description = "Frame tags: on (every frame carries its Poly1305 tag, as training does), off (handshake only), or both side by side.",
            DefaultValueFactory = _ => "both",
        };
        var mac = new Option<bool>("--mac") { Hidden = true };
        var macSpeed = new Option<bool>("--mac-speed") { Description = "Only measure the keyed MACs (HMAC-SHA256, AES-GCM as GMAC, Poly1305) on one core, and exit." };
        var json = new Option<bool>("--json") { Description = "One JSON object per line instead of a table." };
        var serve = new Option<bool>("--serve") { Hidden = true };
        var replyPort = new Option<int>("--reply-port") { Hidden = true };
        var maxMiB = new Option<int>("--max-mib") { Hidden = true, DefaultValueFactory = _ => 16 };
        var bufferBytes = new Option<int>("--socket-buffer-bytes")
        {
            Description = "Kernel send/receive buffer per connection (disttrain.data-plane.socket-buffer-bytes).",
            DefaultValueFactory = _ => DataPlaneDefaults.SocketBufferBytes,
        };
        var cmd = new Command("transport", "Tensor transport between two processes over the data plane, beside iperf3.")
            { sizes, megabytes, iperf, json, serve, replyPort, maxMiB, bufferBytes, auth, mac, macSpeed };
        cmd.SetAction(p => p.GetValue(macSpeed) ? MacSpeed.Run(new BenchOutput(p.GetValue(json))) : p.GetValue(serve)
            ? TransportPeer.Serve(p.GetValue(replyPort), p.GetValue(maxMiB) * (1 << 18), p.GetValue(bufferBytes), p.GetValue(mac))
            : Run(p.GetValue(sizes)!, p.GetValue(megabytes), p.GetValue(bufferBytes), !p.GetValue(iperf), p.GetValue(auth)!, new BenchOutput(p.GetValue(json))));
        return cmd;
    }

    /// <summary>One way of framing, measured through its own child process and connections.</summary>
    private sealed record Lane(bool Mac, BenchReceiver Echoes, DataPlaneServer ReplyServer, Process Child, DataPlaneClient Client) : IDisposable
    {
        public string Path => Mac ? "dataplane" : "dataplane, no tag";

        public void Dispose()
        {
            Client.Dispose();
            try { Child.StandardInput.Close(); Child.WaitForExit(10_000); } catch (Exception) { /* already gone */ }
            if (!Child.HasExited) Child.Kill();
            Child.Dispose();
            ReplyServer.Dispose();
        }
    }

    private static Lane OpenLane(bool mac, int maxMiB, int bufferBytes)
    {
        var maxFloats = maxMiB * (1 << 18);
        var key = DataPlaneKey.Create();
        var echoes = new BenchReceiver(maxFloats);
        var replyServer = new DataPlaneServer(IPAddress.Loopback, 0, echoes, key, maxFrameBytes: (long)maxFloats * 4, bufferBytes, frameMac: mac);
        var child = StartChild(replyServer.Port, maxMiB, bufferBytes, mac);
        try
        {
            // The key goes to the child on its stdin, never on its command line (which every user of the machine can read).
            child.StandardInput.WriteLine("KEY " + Convert.ToBase64String(key.ToWire()));
            child.StandardInput.Flush();
            var port = int.Parse(ReadLine(child, "PORT "));
            var client = DataPlaneClient.Connect("127.0.0.1", port, senderId: 1, key.PeerKey(1), TimeSpan.FromSeconds(10), bufferBytes, frameMac: mac);
            return new Lane(mac, echoes, replyServer, child, client);
        }
        catch
        {
            if (!child.HasExited) child.Kill();
            replyServer.Dispose();
            throw;
        }
    }

    private static int Run(string sizesText, int megabytes, int bufferBytes, bool withIperf, string authText, BenchOutput output)
    {
        bool[] macs = authText switch { "both" => [false, true], "on" => [true], "off" => [false], _ => [] };
        if (macs.Length == 0) { Console.Error.WriteLine($"--auth '{authText}' must be on, off or both."); return 2; }
        int[] sizes;
        try { sizes = sizesText.Split(',', StringSplitOptions.TrimEntries).Select(int.Parse).ToArray(); }
        catch (FormatException) { Console.Error.WriteLine($"--sizes '{sizesText}' must be comma-separated MiB counts, e.g. 1,4,16."); return 2; }
        if (sizes.Length == 0 || sizes.Any(s => s is <= 0 or > 512)) { Console.Error.WriteLine("--sizes must be 1..512 MiB each."); return 2; }
        if (megabytes <= 0) { Console.Error.WriteLine("--megabytes must be positive."); return 2; }
        if (bufferBytes is not 0 and < 64 * 1024) { Console.Error.WriteLine("--socket-buffer-bytes must be 0 (kernel autotuning) or at least 65536."); return 2; }

        var maxFloats = sizes.Max() * (1 << 18);
        var lanes = new List<Lane>();
        try
        {
            foreach (var mac in macs) lanes.Add(OpenLane(mac, sizes.Max(), bufferBytes));
            var tensor = new float[maxFloats];
            new Random(1).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tensor.AsSpan()));
            output.Note($"data plane, 127.0.0.1, {Environment.ProcessorCount} cores; MB = 10^6 bytes, GB = 10^9 bytes; " +
                        "every connection authenticated with its pair key; \"dataplane\" frames carry their Poly1305 tag, \"no tag\" ones do not");
            foreach (var mib in sizes)
            {
                var payload = tensor.AsSpan(0, mib * (1 << 18));
                var n = Math.Max(8, megabytes / mib);
                foreach (var roundTrip in new[] { false, true })
                {
                    // One way, each lane is bracketed by iperf3 -l 1M runs just before and after it (Bench/Bracketing): its
                    // fraction of the ceiling then compares runs seconds apart, not minutes, on a host whose load drifts.
                    bool bracket = withIperf && !roundTrip;
                    var ceilings = new List<double>();          // seconds per GB of each iperf3 run around the lanes
                    var rows = new List<(Dictionary<string, object?> Row, double SecondsPerGb)>();
                    if (bracket && Iperf(BracketBlock, BracketSeconds) is { } before) ceilings.Add(1e3 / before.MBps);
                    foreach (var lane in lanes)
                    {
                        // Warm-up for at least a second: socket buffers grow, and the tiered JIT replaces the first quick code
                        // of the send, receive and hash loops (its background compiles would otherwise be counted as transport CPU).
                        var warm = Stopwatch.StartNew();
                        do Measure(lane.Client, lane.Echoes, lane.Child, payload, Math.Max(2, n / 8), roundTrip);
                        while (warm.Elapsed < WarmUp);
                        var r = Measure(lane.Client, lane.Echoes, lane.Child, payload, roundTrip ? Math.Max(4, n / 2) : n, roundTrip);
                        rows.Add((new Dictionary<string, object?>
                        {
                            ["path"] = lane.Path, ["mode"] = roundTrip ? "round-trip" : "one-way", ["MiB"] = mib, ["transfers"] = r.Transfers,
                            ["MB/s"] = r.MBps, ["ms/transfer"] = r.MsPerTransfer, ["cpu_s/GB_send"] = r.SenderCpu, ["cpu_s/GB_recv"] = r.ReceiverCpu,
                            ["cpu_s/GB_total"] = r.SenderCpu + r.ReceiverCpu, ["alloc_B/transfer_send"] = r.SenderAlloc, ["alloc_B/transfer_recv"] = r.ReceiverAlloc,
                        }, 1e3 / r.MBps));
                        if (bracket && Iperf(BracketBlock, BracketSeconds) is { } after) ceilings.Add(1e3 / after.MBps);
                    }
                    if (bracket && ceilings.Count == rows.Count + 1)
                    {
                        var fractions = Bracketing.Speedups(ceilings, rows.Select(x => x.SecondsPerGb).ToArray());
                        for (int i = 0; i < rows.Count; i++)
                        {
                            rows[i].Row["iperf3_1M_MB/s_around"] = 2e3 / (ceilings[i] + ceilings[i + 1]);
                            rows[i].Row["of_iperf3_1M"] = fractions[i];
                        }
                    }
                    foreach (var (row, _) in rows) output.Add(row);
                }
            }
        }
        finally
        {
            foreach (var lane in lanes) lane.Dispose();
        }
        if (withIperf)
        {
            // iperf3 rewrites one buffer that stays in cache (128 KiB by default, 1 MiB at most): the second row is the
            // fairer ceiling for tensors of a MiB and more, which come from and land in memory that is not cache-hot.
            RunIperf(output, blockBytes: null);
            RunIperf(output, blockBytes: 1 << 20);
        }
        output.Flush();
        return 0;
    }

    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(1);

    private sealed record Result(int Transfers, double MBps, double MsPerTransfer, double SenderCpu, double ReceiverCpu, double SenderAlloc, double ReceiverAlloc);

    /// <summary>
    /// One-way: send n tensors back to back (the kernel buffers keep ~16 MiB in flight), then one ack that the child
    /// answers after the last tensor arrived. Round trip: each tensor is echoed whole before the next is sent.
    /// CPU and bytes count the measured window only; a GB here is the payload crossing in either direction.
    /// </summary>
    private static Result Measure(DataPlaneClient client, BenchReceiver echoes, Process child, ReadOnlySpan<float> payload, int n, bool roundTrip)
    {
        using var self = Process.GetCurrentProcess();
        var (childCpu0, childFrames0, childAlloc0) = ChildStats(child);
        var echoFrames0 = echoes.Frames;
        var echoAlloc0 = echoes.ThreadAlloc;
        self.Refresh();
        var cpu0 = self.TotalProcessorTime;
        var start = Stopwatch.GetTimestamp();
        var alloc0 = GC.GetAllocatedBytesForCurrentThread();
        var header = new FrameHeader(FrameKind.Gradient, 0, roundTrip ? BenchFrames.Echo : BenchFrames.OneWay, 0, 0, 0, 0, 0, 0);
        for (var i = 0; i < n; i++)
        {
            client.Send(header with { Step = i }, payload);
            if (roundTrip && !echoes.Arrived.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("echo did not come back within 60 s");
        }
        var senderAlloc = GC.GetAllocatedBytesForCurrentThread() - alloc0; // the send loop (and echo waits) only
        if (!roundTrip)
        {
            client.Send(header with { MicroBatch = BenchFrames.Ack }, payload[..1]);
            if (!echoes.Arrived.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("ack did not come back within 60 s");
        }
        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        self.Refresh();
        var cpu = (self.TotalProcessorTime - cpu0).TotalSeconds;
        var (childCpu1, childFrames1, childAlloc1) = ChildStats(child);

        var bytes = (double)payload.Length * 4 * n * (roundTrip ? 2 : 1);
        var gb = bytes / 1e9;
        var childFrames = childFrames1 - childFrames0;
        // Receiver allocation: the child's receive thread, plus (round trip) this process's echo-receive thread.
        var recvAlloc = (double)(childAlloc1 - childAlloc0) / Math.Max(1, childFrames);
        if (roundTrip) recvAlloc += (double)(echoes.ThreadAlloc - echoAlloc0) / Math.Max(1, echoes.Frames - echoFrames0);
        return new Result(n, payload.Length * 4.0 * n / 1e6 / seconds, seconds * 1e3 / n,
            cpu / gb, (childCpu1 - childCpu0) / gb, (double)senderAlloc / n, recvAlloc);
    }

    private static Process StartChild(int replyPort, int maxMiB, int bufferBytes, bool mac)
    {
        var exe = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find the disttrain executable to start the receiver");
        var psi = new ProcessStartInfo(exe) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(typeof(Program).Assembly.Location);
        foreach (var a in new[] { "bench", "transport", "--serve", "--reply-port", replyPort.ToString(), "--max-mib", maxMiB.ToString(), "--socket-buffer-bytes", bufferBytes.ToString() })
            psi.ArgumentList.Add(a);
        if (mac) psi.ArgumentList.Add("--mac");
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start the receiver process");
    }

    private static string ReadLine(Process child, string prefix)
    {
        var line = child.StandardOutput.ReadLine() ?? throw new InvalidOperationException("the receiver process exited early");
        return line.StartsWith(prefix, StringComparison.Ordinal) ? line[prefix.Length..] : throw new InvalidOperationException($"unexpected receiver output: {line}");
    }

    private static (double Cpu, long Frames, long Alloc) ChildStats(Process child)
    {
        child.StandardInput.WriteLine("stats");
        child.StandardInput.Flush();
        var parts = ReadLine(child, "STATS ").Split(' ');
        return (double.Parse(parts[0]), long.Parse(parts[1]), long.Parse(parts[2]));
    }

    /// <summary>iperf3 -l 1M for 1 s: the ceiling run just before and after each one-way lane.</summary>
    private const int BracketBlock = 1 << 20, BracketSeconds = 1;

    private sealed record IperfResult(double MBps, double SenderCpu, double ReceiverCpu);

    /// <summary>
    /// iperf3 on 127.0.0.1, one stream: the raw-TCP ceiling measured in the same sitting. Its CPU figures are its own
    /// cpu_utilization_percent (user + system time of the client and of the server process over the test), the same
    /// whole-process measure as the data-plane rows. Null (and a note) when iperf3 is missing or fails.
    /// </summary>
    private static IperfResult? Iperf(int? blockBytes, int seconds, BenchOutput? output = null)
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Process? server = null;
        try
        {
            server = Process.Start(new ProcessStartInfo("iperf3", $"-s -1 -p {port}") { RedirectStandardOutput = true, UseShellExecute = false });
            Thread.Sleep(500);
            using var c = Process.Start(new ProcessStartInfo("iperf3", $"-c 127.0.0.1 -p {port} -t {seconds} -J" + (blockBytes is { } b ? $" -l {b}" : "")) { RedirectStandardOutput = true, UseShellExecute = false })!;
            var text = c.StandardOutput.ReadToEnd();
            if (!c.WaitForExit(30_000)) { c.Kill(); output?.Note("iperf3: no result within 30 s"); return null; }
            using var doc = JsonDocument.Parse(text);
            var end = doc.RootElement.GetProperty("end");
            var recv = end.GetProperty("sum_received");
            var cpu = end.GetProperty("cpu_utilization_percent");
            var elapsed = recv.GetProperty("seconds").GetDouble();
            var gb = recv.GetProperty("bytes").GetDouble() / 1e9;
            double CpuPerGb(string key) => cpu.GetProperty(key).GetDouble() / 100 * elapsed / gb;
            return new IperfResult(recv.GetProperty("bits_per_second").GetDouble() / 8 / 1e6, CpuPerGb("host_total"), CpuPerGb("remote_total"));
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            output?.Note($"iperf3 comparison skipped: {e.Message} (scripts/setup.sh installs iperf3)");
            return null;
        }
        finally
        {
            if (server is { HasExited: false }) server.Kill();
            server?.Dispose();
        }
    }

    /// <summary>iperf3 for 3 s as a row of its own.</summary>
    private static void RunIperf(BenchOutput output, int? blockBytes)
    {
        if (Iperf(blockBytes, 3, output) is not { } r) return;
        output.Add(new Dictionary<string, object?>
        {
            ["path"] = blockBytes is null ? "iperf3" : "iperf3 -l 1M", ["mode"] = "one-way", ["MiB"] = null, ["transfers"] = null,
            ["MB/s"] = r.MBps, ["ms/transfer"] = null,
            ["cpu_s/GB_send"] = r.SenderCpu, ["cpu_s/GB_recv"] = r.ReceiverCpu, ["cpu_s/GB_total"] = r.SenderCpu + r.ReceiverCpu,
        });
    }
}
