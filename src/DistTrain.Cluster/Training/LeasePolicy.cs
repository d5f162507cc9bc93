// How long a worker may hold a micro-batch before it is handed out again (DESIGN contract 4): a multiple of the
// median time between recent steps, at least a floor and at most the ceiling, which is also the lease until two
// steps have completed (the first steps run while the JIT still compiles). A paused or overloaded worker then
// costs a step about a lease of a few step times instead of minutes; one that is only slow finishes anyway, and
// the shards drop whichever copy of its micro-batch comes second. Pure: time is passed in.
namespace DistTrain.Cluster.Training;

public sealed class LeasePolicy
{
    private const int Window = 16;
    private readonly double[] _recent = new double[Window];   // seconds between consecutive step completions
    private readonly TimeSpan _floor, _ceiling;
    private readonly double _multiple;
    private int _count, _next;
    private DateTime? _last;

    public LeasePolicy(TimeSpan floor, double stepMultiple, TimeSpan ceiling)
    {
        if (floor <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(floor), floor, "The lease floor must be positive, e.g. 1s.");
        if (!(stepMultiple >= 1) || double.IsInfinity(stepMultiple))
            throw new ArgumentOutOfRangeException(nameof(stepMultiple), stepMultiple, "The lease's step multiple must be at least 1, e.g. 4.");
        if (ceiling < floor) throw new ArgumentOutOfRangeException(nameof(ceiling), ceiling, $"The lease ceiling must be at least the floor {floor}.");
        (_floor, _multiple, _ceiling) = (floor, stepMultiple, ceiling);
        Current = ceiling;
    }

    public TimeSpan Current { get; private set; }

    /// <summary>A step (a local-sgd round; in async mode a global batch's micro-batches) completed at <paramref name="now"/>:
    /// returns the lease from now on.</summary>
    public TimeSpan StepCompleted(DateTime now)
    {
        if (_last is { } last && now > last)
        {
            _recent[_next] = (now - last).TotalSeconds;
            _next = (_next + 1) % Window;
            _count = Math.Min(_count + 1, Window);
            Span<double> sorted = stackalloc double[Window];
            sorted = sorted[.._count];
            _recent.AsSpan(0, _count).CopyTo(sorted);
            sorted.Sort();
            double median = _count % 2 == 1 ? sorted[_count / 2] : (sorted[_count / 2 - 1] + sorted[_count / 2]) / 2;
            var lease = TimeSpan.FromSeconds(median * _multiple);
            Current = lease < _floor ? _floor : lease > _ceiling ? _ceiling : lease;
        }
        _last = now;
        return Current;
    }
}
