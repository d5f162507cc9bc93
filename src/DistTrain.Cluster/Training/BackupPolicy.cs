// When a straggling micro-batch gets a backup copy (issue: a worker behind a slow link, or a slow host, would set the pace
// of every step). A micro-batch held longer than `multiple` × the median time micro-batches take (what workers report:
// compute and sending, over the recent ones) is also handed to a worker that has nothing left of the step; both compute it, the shards keep the first
// complete copy and compare the second's checksum (the computation is bit-reproducible, so the copies are equal and the
// weights do not depend on which came first). Pure: durations are passed in.
namespace DistTrain.Cluster.Training;

public sealed class BackupPolicy
{
    private const int Window = 64;
    /// <summary>Micro-batches timed before any backup: the first steps (JIT, connections) say little about the usual time.</summary>
    public const int MinSamples = 8;
    private readonly double[] _recent = new double[Window];
    private readonly double _multiple;
    private int _count, _next;

    /// <param name="multiple">A micro-batch held this many median micro-batch times gets a backup copy; 0 = never.</param>
    public BackupPolicy(double multiple)
    {
        if (!(multiple == 0 || multiple >= 1) || double.IsInfinity(multiple) || double.IsNaN(multiple))
            throw new ArgumentOutOfRangeException(nameof(multiple), multiple, "The backup multiple must be 0 (no backup copies) or at least 1, e.g. 2.");
        _multiple = multiple;
    }

    /// <summary>A worker took <paramref name="held"/> to compute and send a micro-batch.</summary>
    public void Completed(TimeSpan held)
    {
        if (held < TimeSpan.Zero) return;
        _recent[_next] = held.TotalSeconds;
        _next = (_next + 1) % Window;
        _count = Math.Min(_count + 1, Window);
    }

    /// <summary>The median of the recent micro-batch times; null before <see cref="MinSamples"/>.</summary>
    public TimeSpan? Median
    {
        get
        {
            if (_count < MinSamples) return null;
            Span<double> sorted = stackalloc double[Window];
            sorted = sorted[.._count];
            _recent.AsSpan(0, _count).CopyTo(sorted);
            sorted.Sort();
            return TimeSpan.FromSeconds(_count % 2 == 1 ? sorted[_count / 2] : (sorted[_count / 2 - 1] + sorted[_count / 2]) / 2);
        }
    }

    /// <summary>How long a micro-batch may be held before it gets a backup copy; null = none now (off, or not timed yet).</summary>
    public TimeSpan? After => _multiple == 0 || Median is not { } m ? null : TimeSpan.FromSeconds(m.TotalSeconds * _multiple);
}
