// Process CPU time without allocating (clock_gettime(CLOCK_PROCESS_CPUTIME_ID) on Linux), so a benchmark
// can tell how long it actually held a core on a shared machine.
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DistTrain.Cli.Bench;

public static partial class CpuTime
{
    private const int ClockProcessCpuTimeId = 2;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds, Nanoseconds; }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec ts);

    /// <summary>CPU seconds used by all threads of this process.</summary>
    public static double ProcessSeconds()
    {
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockProcessCpuTimeId, out var ts) == 0)
            return ts.Seconds + ts.Nanoseconds * 1e-9;
        return Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
    }
}

/// <summary>
/// How many cores other processes kept busy during a measurement (machine busy time from /proc/stat minus
/// our own), the same test as the libtorch peer's: a repetition is clean when others used under 0.1 core.
/// </summary>
public sealed class ForeignLoad
{
    private long _busy0;
    private double _self0, _wall0;

    public static bool Available => File.Exists("/proc/stat");

    public void Start()
    {
        _busy0 = MachineBusyTicks();
        _self0 = CpuTime.ProcessSeconds();
        _wall0 = Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
    }

    /// <summary>Cores used by other processes since <see cref="Start"/> (0 when unknown).</summary>
    public double Stop()
    {
        if (!Available) return 0;
        double wall = Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency - _wall0;
        double machine = (MachineBusyTicks() - _busy0) / 100.0, self = CpuTime.ProcessSeconds() - _self0;
        return wall > 0 ? Math.Max(0, machine - self) / wall : 0;
    }

    private static long MachineBusyTicks()
    {
        if (!Available) return 0;
        var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // user nice system idle iowait irq softirq steal
        return long.Parse(f[1]) + long.Parse(f[2]) + long.Parse(f[3]) + long.Parse(f[6]) + long.Parse(f[7]) + long.Parse(f[8]);
    }
}
