// What the multi-host and fuzz tests share: `disttrain` processes started in a namespace of a HostNetwork (or on this
// host), their output kept per process and all of them killed on Dispose; the TCP ports a process listens on (read from
// /proc, so an ephemeral port is found without asking the process); and a thread that enters another network namespace
// (setns), so a test can play a stranger on the bridge with sockets of its own.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Xunit.Abstractions;

namespace DistTrain.Cli.Tests.Support;

/// <summary>`disttrain` processes of one test; every one still running is killed (with its children) on Dispose.</summary>
internal sealed class DisttrainProcesses(ITestOutputHelper output) : IDisposable
{
    private readonly List<Process> _processes = [];
    private readonly ConcurrentDictionary<int, ConcurrentQueue<string>> _lines = new();

    /// <summary>Starts `dotnet disttrain.dll ARGS`, inside network namespace <paramref name="netns"/> when given
    /// (`ip netns exec` execs dotnet, so the process id is dotnet's).</summary>
    public Process Start(string args, string name, string? netns = null, Action<string>? onLine = null)
    {
        string dll = MultiProcessClusterTests.Dll();
        var psi = netns is null
            ? new ProcessStartInfo("dotnet", $"\"{dll}\" {args}")
            : new ProcessStartInfo("ip", $"netns exec {netns} dotnet \"{dll}\" {args}");
        psi.RedirectStandardOutput = true; psi.RedirectStandardError = true; psi.UseShellExecute = false;
        var p = Process.Start(psi)!;
        var lines = _lines.GetOrAdd(p.Id, _ => new ConcurrentQueue<string>());
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lines.Enqueue(e.Data); Log($"[{name}] {e.Data}"); onLine?.Invoke(e.Data); } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lines.Enqueue("! " + e.Data); Log($"[{name}!] {e.Data}"); } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        lock (_processes) _processes.Add(p);
        return p;
    }

    /// <summary>What <paramref name="p"/> printed so far (stderr lines start with "! ").</summary>
    public string[] Lines(Process p) => _lines.TryGetValue(p.Id, out var q) ? q.ToArray() : [];

    /// <summary>Waits (bounded) until <paramref name="p"/> printed a line that <paramref name="match"/> accepts <paramref name="count"/> times.</summary>
    public async Task WaitForLine(Process p, Func<string, bool> match, TimeSpan limit, int count = 1)
    {
        var clock = Stopwatch.StartNew();
        while (Lines(p).Count(match) < count)
        {
            if (p.HasExited) throw new InvalidOperationException($"process {p.Id} exited ({p.ExitCode}) before printing the line waited for");
            if (clock.Elapsed > limit) throw new TimeoutException($"process {p.Id} did not print the line waited for within {limit.TotalSeconds:0} s");
            await Task.Delay(50);
        }
    }

    public void Log(string line) { try { output.WriteLine(line); } catch (InvalidOperationException) { } }

    public void Dispose()
    {
        lock (_processes)
            foreach (var p in _processes)
            {
                try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                try { p.WaitForExit(5000); } catch (InvalidOperationException) { }
                p.Dispose();
            }
    }
}

/// <summary>Facts about a running process from /proc: the TCP ports it listens on, its resident memory and threads.</summary>
internal static class ProcFacts
{
    /// <summary>TCP ports process <paramref name="pid"/> listens on (its sockets in LISTEN state, matched by inode).</summary>
    public static int[] ListeningPorts(int pid)
    {
        var inodes = new HashSet<string>();
        try
        {
            foreach (var fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
            {
                string? target = null;
                try { target = new FileInfo(fd).LinkTarget; } catch (IOException) { } catch (UnauthorizedAccessException) { }
                if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal)) inodes.Add(target[8..^1]);
            }
        }
        catch (DirectoryNotFoundException) { return []; }
        var ports = new SortedSet<int>();
        foreach (var table in new[] { "tcp", "tcp6" })
        {
            string[] rows;
            try { rows = File.ReadAllLines($"/proc/{pid}/net/{table}"); } catch (IOException) { continue; }
            foreach (var row in rows.Skip(1))
            {
                var f = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode; st 0A = LISTEN.
                if (f.Length > 9 && f[3] == "0A" && inodes.Contains(f[9]))
                    ports.Add(int.Parse(f[1][(f[1].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
        }
        return [.. ports];
    }

    /// <summary>A field of /proc/PID/status in its unit (VmRSS and VmHWM in kB, Threads a count); -1 when the process is gone.</summary>
    public static long Status(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                    return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        return -1;
    }
}

/// <summary>Runs code on a thread inside another network namespace (`ip netns add NAME`): every socket that code creates
/// lives in that namespace, so a test can connect as a host on the bridge. Needs root (CAP_SYS_ADMIN).</summary>
internal static class NetNamespace
{
    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    private const int CloneNewNet = 0x40000000;

    public static T Run<T>(string name, Func<T> body)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        // A thread of its own, ended afterwards: no other code of this process ever runs in the namespace.
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/var/run/netns/{name}");
                if (setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new InvalidOperationException($"setns into network namespace {name} failed (errno {Marshal.GetLastPInvokeError()})");
                result = body();
            }
            catch (Exception e) { error = ExceptionDispatchInfo.Capture(e); }
        }) { IsBackground = true, Name = $"netns:{name}" };
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }
}

/// <summary>Resident memory and thread count of some processes, sampled every 20 ms from Start until Stop: their values at
/// Start and their peaks (in /proc's units: VmRSS in kB).</summary>
internal sealed class ResourcePeaks
{
    private readonly Process[] _processes;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sampler;

    public long[] BaseRss { get; }
    public long[] BaseThreads { get; }
    public long[] PeakRss { get; }
    public long[] PeakThreads { get; }

    private ResourcePeaks(Process[] processes)
    {
        _processes = processes;
        BaseRss = processes.Select(p => ProcFacts.Status(p.Id, "VmRSS")).ToArray();
        BaseThreads = processes.Select(p => ProcFacts.Status(p.Id, "Threads")).ToArray();
        PeakRss = (long[])BaseRss.Clone();
        PeakThreads = (long[])BaseThreads.Clone();
        _sampler = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                for (int i = 0; i < _processes.Length; i++)
                {
                    PeakRss[i] = Math.Max(PeakRss[i], ProcFacts.Status(_processes[i].Id, "VmRSS"));
                    PeakThreads[i] = Math.Max(PeakThreads[i], ProcFacts.Status(_processes[i].Id, "Threads"));
                }
                await Task.Delay(20);
            }
        });
    }

    public static ResourcePeaks Start(params Process[] processes) => new(processes);

    public async Task Stop()
    {
        _stop.Cancel();
        await _sampler;
        _stop.Dispose();
    }

    /// <summary>Asserts that process <paramref name="i"/> grew by at most a small multiple of <paramref name="bytesSent"/> to it
    /// and by at most <paramref name="extraThreads"/> threads; logs what it saw.</summary>
    public void AssertBounded(int i, string name, long bytesSent, long extraThreads, Action<string> log)
    {
        long grownKb = PeakRss[i] - BaseRss[i];
        log($"{name}: {bytesSent / 1024} KB sent, resident memory {BaseRss[i] / 1024} -> peak {PeakRss[i] / 1024} MB, threads {BaseThreads[i]} -> peak {PeakThreads[i]}");
        // A listener or decoder that allocated from a claimed length (1e9-element length bombs) or kept what strangers sent
        // would grow by far more; a runtime's own working set moves by a GC budget, hence the fixed allowance.
        Xunit.Assert.True(grownKb * 1024 <= 4 * bytesSent + (32L << 20), $"{name} grew by {grownKb / 1024} MB for {bytesSent / 1024} KB sent");
        Xunit.Assert.True(PeakThreads[i] <= BaseThreads[i] + extraThreads, $"{name} went from {BaseThreads[i]} to {PeakThreads[i]} threads (at most {extraThreads} more allowed)");
    }
}
