// A small persistent worker pool for SGEMM teams: members 1..N-1 of a call run on parked threads, member 0
// on the caller. A job is a function pointer plus a context pointer on the caller's stack, so a call
// allocates nothing. One call at a time: a caller that cannot enter runs the call alone (results never
// depend on the team size). Workers spin briefly after a call before they sleep, because training and
// the benchmarks issue GEMMs back to back and a sleeping thread takes tens of microseconds to wake.
// A member that has not started when the caller is done is called off: on a shared machine its core may be
// busy elsewhere, and the call (which never waits for a member as such: GemmJob) needs nothing from it.
using System.Diagnostics;

namespace DistTrain.Tensors.Kernels;

internal static unsafe class GemmPool
{
    private static readonly object Gate = new();
    private static readonly List<Worker> Workers = [];
    // Released once by the last worker to finish (a ManualResetEventSlim would allocate its lock object on
    // the first caller that has to block on it).
    private static readonly SemaphoreSlim Done = new(0);
    private static delegate*<int, void*, void> _fn;
    private static void* _ctx;
    private static int _pending;

    // About 100 µs of spinning for the next call: short against a training step, long against the gap
    // between a step's GEMMs.
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    /// <summary>Takes the pool for one call; false when another caller holds it (or this thread is a member).</summary>
    public static bool TryEnter() => !Monitor.IsEntered(Gate) && Monitor.TryEnter(Gate);

    public static void Exit() => Monitor.Exit(Gate);

    /// <summary>Runs fn(member, ctx) for members 0..parts-1 at once, member 0 on the calling thread, which must hold the pool.
    /// Each member gets its own thread, but members that have not started by the time member 0 is done never run:
    /// fn must leave no work that only a given member can do (claim work from shared counters instead).</summary>
    public static void Run(int parts, delegate*<int, void*, void> fn, void* ctx)
    {
        while (Workers.Count < parts - 1) Workers.Add(new Worker(Workers.Count + 1));
        _fn = fn; _ctx = ctx;
        Volatile.Write(ref _pending, parts - 1);
        for (int p = 1; p < parts; p++) Workers[p - 1].Post();
        try { fn(0, ctx); }
        finally
        {
            // Call off the members that have not started; whoever brings _pending to 0 is the last one out.
            bool last = false;
            for (int p = 1; p < parts; p++)
                if (Workers[p - 1].TryRevoke() && Interlocked.Decrement(ref _pending) == 0) last = true;
            if (!last)
            {
                // Members that started may still be running: never return (and free the context) before they finish.
                // Spin first (they are usually microseconds behind), then take the release, which always comes.
                long until = Stopwatch.GetTimestamp() + SpinTicks;
                var spin = new SpinWait();
                while (Volatile.Read(ref _pending) > 0 && Stopwatch.GetTimestamp() < until) spin.SpinOnce(sleep1Threshold: -1);
                Done.Wait();
            }
            _fn = null; _ctx = null;
        }
    }

    private sealed class Worker
    {
        private readonly SemaphoreSlim _wake = new(0);
        private readonly int _member;
        private int _posted;     // 1 while a call is waiting for this worker
        private int _sleeping;   // 1 while the worker is (about to be) blocked on _wake

        public Worker(int member)
        {
            _member = member;
            new Thread(Loop) { IsBackground = true, Name = $"disttrain-gemm-{member}" }.Start();
        }

        public void Post()
        {
            Volatile.Write(ref _posted, 1);
            if (Interlocked.Exchange(ref _sleeping, 0) == 1) _wake.Release();
        }

        /// <summary>Calls off the posted call if this worker has not taken it yet (then it never runs it).</summary>
        public bool TryRevoke() => Interlocked.CompareExchange(ref _posted, 0, 1) == 1;

        private void Loop()
        {
            while (true)
            {
                WaitForCall();
                // Take the call, unless the caller called it off in the meantime (then wait for the next one).
                if (Interlocked.CompareExchange(ref _posted, 0, 1) != 1) continue;
                try { _fn(_member, _ctx); }
                finally { if (Interlocked.Decrement(ref _pending) == 0) Done.Release(); }
            }
        }

        // Spin for a while, then sleep. Post and this method each write their flag before reading the
        // other's (both full fences), so either the worker sees the call or the poster sees it asleep;
        // whoever clears _sleeping decides whether a wake-up token is in flight.
        private void WaitForCall()
        {
            long until = Stopwatch.GetTimestamp() + SpinTicks;
            var spin = new SpinWait();
            while (Volatile.Read(ref _posted) == 0)
            {
                if (Stopwatch.GetTimestamp() < until) { spin.SpinOnce(sleep1Threshold: -1); continue; }
                Interlocked.Exchange(ref _sleeping, 1);
                if (Volatile.Read(ref _posted) != 0)
                {
                    if (Interlocked.Exchange(ref _sleeping, 0) == 0) _wake.Wait(); // the poster released a token: take it
                    return;
                }
                _wake.Wait();
                until = Stopwatch.GetTimestamp() + SpinTicks;
            }
        }
    }
}
