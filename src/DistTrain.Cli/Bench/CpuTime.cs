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
