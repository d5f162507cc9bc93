// One side of an interleaved SGEMM A/B comparison: loads DistTrain.Tensors.dll from a build folder and times
// Gemm.Sgemm on the given shapes. On a shared machine wall time says little, so it also reports GFLOP/s by the
// calling thread's CPU time (one thread) and by the 10th-percentile call (two threads: the calls that ran
// undisturbed). ab.sh alternates builds and takes medians.
//   dotnet GemmAb.dll BUILD_DIR THREADS SECONDS nn:256x256x784 tn:256x784x256+acc ...   (m x n x k)
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

var asm = Assembly.LoadFrom(Path.Combine(Path.GetFullPath(args[0]), "DistTrain.Tensors.dll"));
var sgemm = (SgemmFn)Delegate.CreateDelegate(typeof(SgemmFn),
    asm.GetType("DistTrain.Tensors.Kernels.Gemm")!.GetMethod("Sgemm")!);
int threads = int.Parse(args[1]);
double seconds = double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
foreach (var shape in args.Skip(3))
{
    var (ta, tb, acc, m, n, k, a, b, c, lda, ldb) = GemmCase.Parse(shape);
    void Call() => sgemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, acc, threads);

    var sw = Stopwatch.StartNew();
    int warm = 0;
    while (sw.Elapsed.TotalSeconds < 0.3) { Call(); warm++; }
    int calls = Math.Max(10, (int)(warm * seconds / 0.3));
    var each = new long[calls];
    long cpu0 = ThreadCpuNs();
    sw.Restart();
    for (int i = 0; i < calls; i++) { long t0 = Stopwatch.GetTimestamp(); Call(); each[i] = Stopwatch.GetTimestamp() - t0; }
    double wall = sw.Elapsed.TotalSeconds, cpu = (ThreadCpuNs() - cpu0) * 1e-9;
    Array.Sort(each);
    double flop = 2.0 * m * n * k, tick = 1.0 / Stopwatch.Frequency;
    Console.WriteLine($"{shape} threads={threads} cpu_gflops={flop * calls / cpu / 1e9:F1} wall_gflops={flop * calls / wall / 1e9:F1} " +
                      $"p10_gflops={flop / (each[calls / 10] * tick) / 1e9:F1} p50_gflops={flop / (each[calls / 2] * tick) / 1e9:F1}");
}

static long ThreadCpuNs() { clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, out var ts); return ts.Sec * 1_000_000_000L + ts.Nsec; }

[DllImport("libc")] static extern int clock_gettime(int clock, out Timespec ts);

internal struct Timespec { public long Sec; public long Nsec; }
