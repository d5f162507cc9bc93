// SGEMM A/B of several DistTrain.Tensors builds inside one process (one AssemblyLoadContext each), switching
// build every SLICE milliseconds, so that all builds see the same load (ab.sh alternates whole processes, seconds
// apart). Per build: GFLOP/s by the calling thread's CPU time and by quantiles of per-call wall time (p1: the
// calls that ran undisturbed; at 2 threads only meaningful when both threads found a free core).
//   dotnet build benchmarks/gemm-mix -c Release -o /tmp/mix
//   dotnet /tmp/mix/GemmMix.dll THREADS SECONDS SLICE_MS nn:256x256x256,tn:512x512x512+acc DIR_A DIR_B ...
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

int threads = int.Parse(args[0]);
double seconds = double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
double sliceMs = double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
var shapes = args[3].Split(',');
var dirs = args.Skip(4).ToArray();
var fns = dirs.Select(d => {
    var alc = new AssemblyLoadContext(d, false);
    var asm = alc.LoadFromAssemblyPath(Path.Combine(Path.GetFullPath(d), "DistTrain.Tensors.dll"));
    return (SgemmFn)Delegate.CreateDelegate(typeof(SgemmFn), asm.GetType("DistTrain.Tensors.Kernels.Gemm")!.GetMethod("Sgemm")!);
}).ToArray();
foreach (var shape in shapes)
{
    var (ta, tb, acc, m, n, k, a, b, c, lda, ldb) = GemmCase.Parse(shape);
    var times = fns.Select(_ => new List<long>()).ToArray();
    var cpu = new long[fns.Length]; var calls = new long[fns.Length];
    foreach (var f in fns) for (int i = 0; i < 20; i++) f(ta, tb, m, n, k, a, lda, b, ldb, c, n, acc, threads);
    long slice = (long)(sliceMs * Stopwatch.Frequency / 1000), end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
    int round = 0;
    while (Stopwatch.GetTimestamp() < end)
    {
        for (int j = 0; j < fns.Length; j++)
        {
            int bi = (j + round) % fns.Length; var f = fns[bi];
            long stop = Stopwatch.GetTimestamp() + slice, c0 = ThreadCpuNs();
            int nCalls = 0;
            while (Stopwatch.GetTimestamp() < stop)
            {
                long t0 = Stopwatch.GetTimestamp(); f(ta, tb, m, n, k, a, lda, b, ldb, c, n, acc, threads);
                times[bi].Add(Stopwatch.GetTimestamp() - t0); nCalls++;
            }
            cpu[bi] += ThreadCpuNs() - c0; calls[bi] += nCalls;
        }
        round++;
    }
    double flop = 2.0 * m * n * k, tick = 1.0 / Stopwatch.Frequency;
    for (int j = 0; j < fns.Length; j++)
    {
        var t = times[j]; t.Sort();
        double G(double q) => flop / (t[(int)(t.Count * q)] * tick) / 1e9;
        Console.WriteLine($"{shape,-16} T{threads} {dirs[j],-22} calls {t.Count,7} cpu {flop * calls[j] / (cpu[j] * 1e-9) / 1e9,6:F1}  p1 {G(0.01),6:F1}  p5 {G(0.05),6:F1}  p10 {G(0.10),6:F1}  p50 {G(0.5),6:F1}");
    }
}
static long ThreadCpuNs() { clock_gettime(3, out var ts); return ts.Sec * 1_000_000_000L + ts.Nsec; }
[DllImport("libc")] static extern int clock_gettime(int clock, out Timespec ts);
internal struct Timespec { public long Sec; public long Nsec; }
