// A tiny persistent thread team for kernels that split work into independent items (a sample, a
// channel plane): no allocation per call (Parallel.For allocates), the caller works too.
// Items write disjoint outputs, so which thread runs which item never changes the result.
// Helpers that have not woken up by the time the caller has run out of items are called off (their start
// tokens taken back), so a small call or a helper whose core is busy elsewhere never makes the caller wait.
namespace DistTrain.Tensors.Kernels;

/// <summary>One parallel loop body. Kernels keep one instance per calling thread and set its fields per call.</summary>
internal abstract class ParallelJob
{
    /// <summary>Runs item <paramref name="index"/>; <paramref name="slot"/> in [0, threads) names the
    /// running thread, for per-thread scratch.</summary>
    public abstract void Run(int index, int slot);
}

internal static class KernelThreads
{
    private static readonly object Gate = new();
    private static readonly SemaphoreSlim Start = new(0);
    // Released once by the last helper to finish. Not a ManualResetEventSlim: that allocates its lock object
    // (24 B) on the thread that first has to block on it, which can land in any call, however warm.
    private static readonly SemaphoreSlim Finished = new(0);
    private static int _helpers;
    private static ParallelJob? _job;
    private static int _next, _count, _pending, _slotCounter;
    private static Exception? _error;

    /// <summary>Runs job.Run(i, slot) for i in [0, count) on up to <paramref name="threads"/> threads.
    /// If another caller holds the team, runs on the calling thread alone (same result).</summary>
    public static void For(ParallelJob job, int count, int threads)
    {
        int helpers = Math.Min(threads, count) - 1;
        // Serial when there is nothing to share, when another caller holds the team, or when called from
        // inside an item on the caller's own thread (Monitor is re-entrant: the team's state would be overwritten).
        if (helpers <= 0 || Monitor.IsEntered(Gate) || !Monitor.TryEnter(Gate))
        {
            for (int i = 0; i < count; i++) job.Run(i, 0);
            return;
        }
        try
        {
            while (_helpers < helpers)
            {
                var t = new Thread(HelperLoop) { IsBackground = true, Name = "disttrain-kernel-" + _helpers };
                t.Start();
                _helpers++;
            }
            _job = job; _next = 0; _count = count; _error = null; _slotCounter = 0;
            Volatile.Write(ref _pending, helpers);
            Start.Release(helpers);
            try { Drain(job, 0); }
            catch (Exception ex) { _error ??= ex; }
            int revoked = 0;
            while (revoked < helpers && Start.Wait(0)) revoked++; // start tokens no helper took: those never run this call
            // Helpers that did start may still be running items: never return before they finish.
            if (revoked == 0 || Interlocked.Add(ref _pending, -revoked) > 0) Finished.Wait();
            _job = null;
            if (_error is { } e) throw new AggregateException("A parallel kernel item failed.", e);
        }
        finally { Monitor.Exit(Gate); }
    }

    private static void HelperLoop()
    {
        while (true)
        {
            Start.Wait();
            int slot = Interlocked.Increment(ref _slotCounter);
            try { Drain(_job!, slot); }
            catch (Exception e) { _error ??= e; }
            if (Interlocked.Decrement(ref _pending) == 0) Finished.Release();
        }
    }

    private static void Drain(ParallelJob job, int slot)
    {
        int n = _count;
        for (int i = Interlocked.Increment(ref _next) - 1; i < n; i = Interlocked.Increment(ref _next) - 1)
            job.Run(i, slot);
    }
}
