// Starts one run of `disttrain scale` the way scripts/local-cluster.sh does: a free port for the coordinator
// (`disttrain train --workers 0 --cluster-port P --wait-workers W`, with --ps-local 0 when ps processes hold the shards),
// then the ps processes and the worker processes (`disttrain node`), each with its log in the run folder; waits for the
// coordinator, stops the run when another process fails, and kills every process it started when the run ends, fails,
// times out or is cancelled (Ctrl-C). With a HostNetwork each process runs in its own namespace (`ip netns exec`); with
// --latency each host's listeners sit behind LatencyRelays that this process runs.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace DistTrain.Cli.Scale;

/// <summary>What every run of an experiment shares.</summary>
public sealed record LaunchSettings(IReadOnlyList<string> Disttrain, string Model, string? Dataset, int Steps, int Warmup, int Threads,
    string? SimulateCompute, string ConfigFile, TimeSpan RunTimeout)
{
    /// <summary>--latency: the one-way delay every connection between two hosts sees (a LatencyRelay in front of each
    /// host's listeners); null = none.</summary>
    public TimeSpan? Latency { get; init; }
    /// <summary>--bandwidth in bytes per second, which sizes the relays' buffers; null = unshaped.</summary>
    public double? LinkBytesPerSecond { get; init; }
    /// <summary>Train options of local-sgd runs (--local-steps, --outer-optimizer, ...).</summary>
    public IReadOnlyList<string> LocalSgdArgs { get; init; } = [];
    /// <summary>--epochs: the runs' epochs (a cosine schedule's length); null = unlimited, --steps ends the run.</summary>
    public int? Epochs { get; init; }
}

/// <summary>CPU milliseconds per step of each kind of process over the measured steps (sampled once a second, from the
/// first poll at or past the warm-up to the last poll that saw a new step): what saturates a shared host first.</summary>
public sealed record RunCpu(double CoordinatorMs, double PsMeanMs, double PsMaxMs, double WorkerMeanMs, int Steps);

public sealed class ClusterLauncher(LaunchSettings settings, HostNetwork? network, TextWriter console)
{
    private readonly List<StreamWriter> _logs = [];

    /// <summary>Every process started and not yet known to be gone; a process-exit handler kills them too.</summary>
    private static readonly List<Process> Live = [];

    static ClusterLauncher()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();
    }

    /// <summary>Runs <paramref name="p"/> with a global batch of <paramref name="batch"/> into <paramref name="runDir"/>;
    /// returns null when it finished, else why not, and the processes' CPU time per step.</summary>
    public async Task<(string? Error, RunCpu? Cpu)> RunAsync(ScalePoint p, int batch, string runDir, CancellationToken cancel)
    {
        Directory.CreateDirectory(runDir);
        var mine = new List<(Process Process, string Name)>();
        var relays = new List<LatencyRelay>();
        try
        {
            var (coordNs, coordHost) = Where(0);
            int port = FreePort(coordNs);
            var hosts = Enumerable.Range(0, 1 + p.PsNodes + p.Workers).Select(i => Relayed(i, i == 0 ? port : null, runDir, relays)).ToArray();
            var seed = $"akka.tcp://disttrain@{hosts[0].Advertised}:{port}";
            var train = new List<string> { "train", "--model", settings.Model };
            if (settings.Dataset is not null) train.AddRange(["--dataset", settings.Dataset]);
            train.AddRange([
                "--batch-size", I(batch), "--micro-batch", I(p.MicroBatch), "--max-steps", I(settings.Steps), "--epochs", I(settings.Epochs ?? 1000000),
                "--mode", p.Mode, "--compression", p.Compression, "--workers", "0", "--ps-shards", I(p.ShardHosts),
                "--cluster-port", I(port), "--wait-workers", I(p.Workers), "--checkpoint-every", "-1", "--threads", I(settings.Threads),
                "--config", hosts[0].Config, "--out", runDir]);
            if (p.PsNodes > 0) train.AddRange(["--ps-local", "0"]);
            if (p.Mode == "local-sgd") train.AddRange(settings.LocalSgdArgs);
            var coord = Start(train, hosts[0].Args, coordNs, Path.Combine(runDir, "coordinator.log"));
            mine.Add((coord, "coordinator"));
            for (int i = 1; i <= p.PsNodes; i++)
            {
                var (ns, _) = Where(i);
                mine.Add((Start(["node", "--roles", "ps", "--ps-actors", "1", "--seed-nodes", seed, "--config", hosts[i].Config],
                    hosts[i].Args, ns, Path.Combine(runDir, $"ps{i}.log")), $"ps process {i}"));
            }
            for (int i = 1; i <= p.Workers; i++)
            {
                // Dozens of runtimes starting at once on a few cores (the JIT, the joins) starve each other past Akka's
                // timeouts: workers start in batches, each once the previous one has joined (or a minute passed).
                if (i > 1 && (i - 1) % StartBatch == 0) await WaitForJoins(Path.Combine(runDir, "coordinator.log"), i - 1, coord, cancel);
                var (ns, _) = Where(p.PsNodes + i);
                var h = hosts[p.PsNodes + i];
                var args = new List<string> { "node", "--roles", "worker", "--seed-nodes", seed, "--threads", I(settings.Threads), "--config", h.Config };
                if (settings.SimulateCompute is { } sim) args.AddRange(["--simulate-compute", sim]);
                mine.Add((Start(args, h.Args, ns, Path.Combine(runDir, $"worker{i}.log")), $"worker {i}"));
            }
            var result = await Watch(mine, runDir, cancel);
            if (relays.Count > 0)
                console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"    relays: {relays.Sum(r => r.BytesRelayed) / 1e6:F1} MB over {relays.Sum(r => r.Connections)} connections, each way delayed {settings.Latency!.Value.TotalMilliseconds:0.###} ms"));
            return result;
        }
        finally
        {
            foreach (var (process, _) in mine) Kill(process);
            foreach (var relay in relays) relay.Dispose();
            lock (_logs) { foreach (var w in _logs) w.Dispose(); _logs.Clear(); }
        }
    }

    /// <summary>Worker processes started together.</summary>
    public const int StartBatch = 8;

    private static async Task WaitForJoins(string coordinatorLog, int workers, Process coord, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(1) && !coord.HasExited)
        {
            int joined = 0;
            try
            {
                using var f = new FileStream(coordinatorLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                using var r = new StreamReader(f);
                string? line;
                while ((line = r.ReadLine()) is not null) if (line.Contains(" joined (", StringComparison.Ordinal)) joined++;
            }
            catch (IOException) { }
            if (joined >= workers) return;
            await Task.Delay(500, cancel);
        }
    }

    /// <summary>Host <paramref name="index"/>'s namespace (null on loopback) and address.</summary>
    private (string? Namespace, string Address) Where(int index) => network is null ? (null, "127.0.0.1") : network.Host(index);

    /// <summary>--hostname and --insecure for a node on an emulated host (a private bridge: TLS would only cost CPU here).</summary>
    private IReadOnlyList<string> Host(string address) => network is null ? [] : ["--hostname", address, "--insecure"];

    /// <summary>Data-plane listeners a process may open: slot 0 the coordinator's, 1 its first shard or worker, 2 a second.</summary>
    private const int DataSlots = 3;

    /// <summary>Host <paramref name="index"/>'s config file and extra arguments. Without --latency: the shared config and
    /// --hostname. With it, the process binds its Akka port and data-plane ports on its own address and advertises another
    /// (127.0.0.2 on loopback; a second address of the bridge, in this process's namespace, with namespaces), where a
    /// LatencyRelay per port forwards to it after the delay: every connection to the host crosses that relay once, so each
    /// direction between two hosts is delayed once. The ports are fixed beforehand (config file), since the relays must
    /// know them.</summary>
    private (string Config, IReadOnlyList<string> Args, string Advertised) Relayed(int index, int? akkaPort, string runDir, List<LatencyRelay> relays)
    {
        var (ns, bind) = Where(index);
        if (settings.Latency is not { } latency) return (settings.ConfigFile, Host(bind), bind);
        string advertised = network is null ? "127.0.0.2" : network.RelayAddress(index);
        int akka = akkaPort ?? FreePort(ns), data = FreeBlock(ns, akka, DataSlots);
        // Room for twice the bytes a link carries in one delay (a TCP window that keeps it full), 256 KiB to 16 MiB.
        int buffer = (int)Math.Clamp(2 * (settings.LinkBytesPerSecond ?? 2e9 / 8) * latency.TotalSeconds, 256 * 1024, 16 << 20);
        foreach (int port in Enumerable.Range(data, DataSlots).Prepend(akka))
            relays.Add(new LatencyRelay(new IPEndPoint(IPAddress.Parse(advertised), port), new IPEndPoint(IPAddress.Parse(bind), port), latency, buffer));
        var config = Path.Combine(runDir, $"host{index}.hocon");
        File.WriteAllText(config, File.ReadAllText(settings.ConfigFile) + $$"""

            akka.remote.dot-netty.tcp { hostname = "{{bind}}", public-hostname = "{{advertised}}", port = {{akka}} }
            disttrain.data-plane { host = "{{bind}}", public-host = "{{advertised}}", port = {{data}} }
            """);
        return (config, network is null ? [] : ["--insecure"], advertised);
    }

    /// <summary><paramref name="count"/> consecutive free ports that do not include <paramref name="avoid"/>.</summary>
    private static int FreeBlock(string? ns, int avoid, int count)
    {
        if (ns is not null) return avoid + 1; // a fresh namespace: every port is free
        while (true)
        {
            int first = 30000 + Random.Shared.Next(30000);
            if (avoid >= first && avoid < first + count) continue;
            var taken = new List<TcpListener>();
            try
            {
                for (int i = 0; i < count; i++)
                {
                    var l = new TcpListener(IPAddress.Loopback, first + i);
                    l.Start();
                    taken.Add(l);
                }
                return first;
            }
            catch (SocketException) { }
            finally { foreach (var l in taken) l.Stop(); }
        }
    }

    private async Task<(string?, RunCpu?)> Watch(List<(Process Process, string Name)> procs, string runDir, CancellationToken cancel)
    {
        var coord = procs[0].Process;
        var clock = Stopwatch.StartNew();
        var metrics = Path.Combine(runDir, "metrics.jsonl");
        int lastSaid = -1;
        var lastSpoke = Stopwatch.StartNew();
        (int Steps, double[] Cpu)? first = null, last = null;
        Stopwatch? failedAt = null;
        while (!coord.HasExited)
        {
            cancel.ThrowIfCancellationRequested();
            if (clock.Elapsed > settings.RunTimeout)
                return ($"did not finish within {settings.RunTimeout.TotalMinutes:0.#} min (--run-timeout); logs in {runDir}", null);
            int steps = CountSteps(metrics);
            // A node that exits with an error mid-run ends the experiment's run; once the last step is done (by --steps, or by
            // --epochs, or a local-sgd round whose line counts H steps), nodes leave (and may be removed, exit code 5) while the
            // coordinator evaluates and writes the model: that is the run's end, not a failure, and the coordinator exits soon.
            foreach (var (process, name) in procs.Skip(1))
                if (process.HasExited && process.ExitCode != 0 && !coord.HasExited)
                {
                    failedAt ??= Stopwatch.StartNew();
                    if (steps < settings.Steps && failedAt.Elapsed > TimeSpan.FromSeconds(20))
                        return ($"{name} exited with {process.ExitCode} (log: {Path.Combine(runDir, name.Replace("ps process ", "ps").Replace("worker ", "worker") + ".log")})", null);
                }
            if (steps >= settings.Warmup && (last is null || steps > last.Value.Steps))
            {
                var cpu = procs.Select(x => CpuMs(x.Process)).ToArray();
                if (cpu.All(double.IsFinite)) { first ??= (steps, cpu); last = (steps, cpu); }
            }
            if (steps != lastSaid && lastSpoke.Elapsed > TimeSpan.FromSeconds(10))
            {
                console.WriteLine($"    step {steps}/{settings.Steps}  ({clock.Elapsed.TotalSeconds:F0} s)");
                (lastSaid, lastSpoke) = (steps, Stopwatch.StartNew());
            }
            try { await coord.WaitForExitAsync(cancel).WaitAsync(TimeSpan.FromSeconds(1), cancel); }
            catch (TimeoutException) { }
        }
        coord.WaitForExit();
        if (coord.ExitCode != 0)
            return ($"the coordinator exited with {coord.ExitCode}: {LastLine(Path.Combine(runDir, "coordinator.log"))}", null);
        // The nodes leave once the run is done; give them a moment, then the finally kills what is left (the results are written).
        var rest = procs.Skip(1).Select(x => x.Process.WaitForExitAsync(cancel));
        await Task.WhenAll(rest).WaitAsync(TimeSpan.FromSeconds(3), cancel).ContinueWith(_ => { }, TaskScheduler.Default);
        return (null, Cpu(procs, first, last));
    }

    private static RunCpu? Cpu(List<(Process Process, string Name)> procs, (int Steps, double[] Cpu)? first, (int Steps, double[] Cpu)? last)
    {
        if (first is not { } a || last is not { } b || b.Steps <= a.Steps) return null;
        int n = b.Steps - a.Steps;
        double Per(int i) => (b.Cpu[i] - a.Cpu[i]) / n;
        var ps = Enumerable.Range(0, procs.Count).Where(i => procs[i].Name.StartsWith("ps", StringComparison.Ordinal)).Select(Per).ToList();
        var workers = Enumerable.Range(0, procs.Count).Where(i => procs[i].Name.StartsWith("worker", StringComparison.Ordinal)).Select(Per).ToList();
        return new RunCpu(Per(0), ps.Count == 0 ? double.NaN : ps.Average(), ps.Count == 0 ? double.NaN : ps.Max(), workers.Average(), n);
    }

    private static double CpuMs(Process p)
    {
        try { return p.HasExited ? double.NaN : p.TotalProcessorTime.TotalMilliseconds; }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or IOException) { return double.NaN; }
    }

    private static string LastLine(string log)
    {
        try { return File.ReadLines(log).LastOrDefault(l => l.Trim().Length > 0)?.Trim() ?? "(empty log)"; }
        catch (IOException) { return "(no log)"; }
    }

    private static int CountSteps(string metrics)
    {
        try
        {
            using var s = new FileStream(metrics, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(s);
            int n = 0;
            string? line;
            while ((line = r.ReadLine()) is not null) if (line.Contains("\"kind\":\"step\"", StringComparison.Ordinal)) n++;
            return n;
        }
        catch (IOException) { return 0; }
    }

    private Process Start(IReadOnlyList<string> args, IReadOnlyList<string> host, string? ns, string log)
    {
        var all = settings.Disttrain.Concat(args).Concat(host).ToList();
        if (ns is not null) all = ["ip", "netns", "exec", ns, .. all];
        var psi = new ProcessStartInfo(all[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in all.Skip(1)) psi.ArgumentList.Add(a);
        var writer = new StreamWriter(log) { AutoFlush = true };
        writer.WriteLine("$ " + string.Join(" ", all));
        var process = new Process { StartInfo = psi };
        var gate = new object();
        void Write(string? line)
        {
            if (line is null) return;
            lock (gate) { try { writer.WriteLine(line); } catch (ObjectDisposedException) { } }
        }
        process.OutputDataReceived += (_, e) => Write(e.Data);
        process.ErrorDataReceived += (_, e) => Write(e.Data);
        lock (_logs) _logs.Add(writer);
        process.Start();
        lock (Live) Live.Add(process);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static void Kill(Process p)
    {
        try
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            p.WaitForExit(); // and its redirected output, before the log is closed
        }
        catch (InvalidOperationException) { }
        catch (System.ComponentModel.Win32Exception) { }
        lock (Live) Live.Remove(p);
    }

    private static void KillAll()
    {
        Process[] all;
        lock (Live) all = Live.ToArray();
        foreach (var p in all) Kill(p);
    }

    /// <summary>A free TCP port (bound to port 0, then released, as scripts/local-cluster.sh picks one). In a fresh
    /// namespace every port is free, so any port from the ephemeral range does.</summary>
    private static int FreePort(string? ns)
    {
        if (ns is not null) return 20000 + Random.Shared.Next(20000);
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static string I(long v) => v.ToString(CultureInfo.InvariantCulture);
}
