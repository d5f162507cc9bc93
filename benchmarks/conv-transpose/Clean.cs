// A copy of ../shared/peers/torchsharp/Clean.cs, so both sides of this benchmark count clean reps by one rule.
using System.Diagnostics;
// Contamination-aware repetition: the machine is shared with other sessions' processes.
// Each rep records wall time, this process's CPU jiffies (/proc/self/stat) and machine busy jiffies (/proc/stat).
// foreign = machine busy - own. A rep is "clean" if foreign CPU < 10% of wall (i.e. <0.1 core busy with others).
public static class Clean
{
    static long SysBusy()
    {
        var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long user = long.Parse(f[1]), nice = long.Parse(f[2]), sys = long.Parse(f[3]), irq = long.Parse(f[6]), sirq = long.Parse(f[7]), steal = long.Parse(f[8]);
        return user + nice + sys + irq + sirq + steal;
    }
    static long SelfCpu()
    {
        var s = File.ReadAllText("/proc/self/stat");
        var f = s.Substring(s.LastIndexOf(')') + 2).Split(' ');
        return long.Parse(f[11]) + long.Parse(f[12]); // utime, stime (fields 14,15)
    }
    static double Median(List<double> v) { v = v.OrderBy(x => x).ToList(); int n = v.Count; return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

    /// rep() does one repetition and returns the amount of work (flops, samples, bytes); returns rate = work/s.
    public static string Measure(Func<double> rep, int wantClean = 5, int maxReps = 25, double maxSeconds = 60)
    {
        var all = new List<double>(); var clean = new List<double>(); var foreignFrac = new List<double>();
        var total = Stopwatch.StartNew();
        while (clean.Count < wantClean && all.Count < maxReps && total.Elapsed.TotalSeconds < maxSeconds)
        {
            long b0 = SysBusy(), s0 = SelfCpu(); var sw = Stopwatch.StartNew();
            double work = rep();
            double t = sw.Elapsed.TotalSeconds; long b1 = SysBusy(), s1 = SelfCpu();
            double foreign = Math.Max(0, ((b1 - b0) - (s1 - s0)) / 100.0) / t;   // cores used by others during rep
            double rate = work / t;
            all.Add(rate); foreignFrac.Add(foreign);
            if (foreign < 0.10) clean.Add(rate);
        }
        string med = clean.Count >= 3 ? $"{Median(clean):G5}" : $"{Median(all):G5}(CONTAMINATED)";
        return $"median={med} clean={clean.Count}/{all.Count} allmedian={Median(all):G5} best={all.Max():G5} meanForeignCores={foreignFrac.Average():F2}";
    }
}
