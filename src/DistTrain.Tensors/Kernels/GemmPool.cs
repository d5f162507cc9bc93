// A small persistent worker pool for compute kernels: parts 1..N-1 of a job run on parked threads,
// part 0 on the caller. A job is a function pointer plus a context pointer on the caller's stack, so a
// call allocates nothing. One job at a time: a caller that finds the pool busy runs every part itself
// (results never depend on which thread ran a part).
namespace DistTrain.Tensors.Kernels;

internal static unsafe class GemmPool
{
    private static readonly object Gate = new();
    private static readonly List<Worker> Workers = [];
    private static readonly ManualResetEventSlim Done = new(false, spinCount: 2000);
    private static delegate*<int, void*, void> _fn;
    private static void* _ctx;
    private static int _pending;

    public static void Run(int parts, delegate*<int, void*, void> fn, void* ctx)
    {
        if (!Monitor.TryEnter(Gate))
        {
            for (int p = 0; p < parts; p++) fn(p, ctx);
            return;
        }
        try
        {
            while (Workers.Count < parts - 1) Workers.Add(new Worker(Workers.Count + 1));
            _fn = fn; _ctx = ctx;
            Done.Reset();
            Volatile.Write(ref _pending, parts - 1);
            for (int p = 1; p < parts; p++) Workers[p - 1].Go.Release();
            fn(0, ctx);
            Done.Wait();
        }
        finally
        {
            _fn = null; _ctx = null;
            Monitor.Exit(Gate);
        }
    }

    private sealed class Worker
    {
        public readonly SemaphoreSlim Go = new(0);
        private readonly int _part;

        public Worker(int part)
        {
            _part = part;
            new Thread(Loop) { IsBackground = true, Name = $"disttrain-compute-{part}" }.Start();
        }

        private void Loop()
        {
            while (true)
            {
                Go.Wait();
                try { _fn(_part, _ctx); }
                finally { if (Interlocked.Decrement(ref _pending) == 0) Done.Set(); }
            }
        }
    }
}
