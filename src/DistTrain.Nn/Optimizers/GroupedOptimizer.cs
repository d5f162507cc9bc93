// Optimizer groups over the one flat parameter vector (PyTorch's param_groups): named ranges of the vector, each stepped
// with the schedule's rate times its own factor — a GAN's generator and discriminator. One inner optimizer keeps the
// state for the whole range, so checkpoints and a shard's state keep the optimizer's names and layout; the groups step
// parts of it (Optimizer.StepSegment), which gives each value the bits a whole-range step would (the update is
// elementwise), so a shard boundary anywhere inside a group changes nothing (DESIGN contract 2).
namespace DistTrain.Nn.Optimizers;

/// <summary>A named range [Offset, Offset + Length) of the flat parameter vector whose learning rate is the schedule's
/// times <paramref name="LrScale"/>.</summary>
public sealed record ParameterGroup(string Name, int Offset, int Length, float LrScale)
{
    public int End => Offset + Length;
}

public sealed class GroupedOptimizer : Optimizer
{
    private readonly ParameterGroup[] _groups;

    /// <param name="inner">The optimizer of the range this one updates (its length); it must support segments when a group's
    /// factor is not 1.</param>
    /// <param name="groups">Disjoint ranges in the coordinates of the whole flat vector; values in none have factor 1.</param>
    public GroupedOptimizer(Optimizer inner, IReadOnlyList<ParameterGroup> groups) : base(inner.Length)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(groups);
        _groups = groups.OrderBy(g => g.Offset).ToArray();
        for (int i = 0; i < _groups.Length; i++)
        {
            var g = _groups[i];
            if (g.Offset < 0 || g.Length < 0 || !(g.LrScale >= 0) || !float.IsFinite(g.LrScale))
                throw new ArgumentException($"Parameter group {g.Name} [{g.Offset}, {g.End}) ×{g.LrScale}: the range must be non-negative and the factor finite and ≥ 0.", nameof(groups));
            if (i > 0 && g.Offset < _groups[i - 1].End)
                throw new ArgumentException($"Parameter groups {_groups[i - 1].Name} and {g.Name} overlap.", nameof(groups));
        }
        if (_groups.Any(g => g.LrScale != 1f) && !inner.Segmentable)
            throw new ArgumentException($"{inner} cannot give parameter groups their own learning rates; use sgd, momentum, adam or adamw.", nameof(inner));
        Inner = inner;
    }

    public Optimizer Inner { get; }
    public IReadOnlyList<ParameterGroup> Groups => _groups;
    /// <summary>Where this optimizer's range starts in the flat vector (a shard's key range; 0 for a whole model).</summary>
    public int Offset { get; private set; }

    /// <summary>Places this optimizer's range at <paramref name="offset"/> of the flat vector (a shard does this for its range).</summary>
    public void Bind(int offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        Offset = offset;
    }

    public override bool Segmentable => Inner.Segmentable;

    public override IReadOnlyList<(string Name, float[] Data)> State => Inner.State;

    public override void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t) =>
        Step(values, grads, lr, t, 0, values.Length);

    public override void StepSegment(Span<float> values, ReadOnlySpan<float> grads, float lr, long t, int offset) =>
        Step(values, grads, lr, t, offset, values.Length);

    // Runs of equal factor are stepped in one call; a range whose factors are all 1 is the inner optimizer's plain step.
    private void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t, int from, int count)
    {
        if (values.Length != grads.Length)
            throw new ArgumentException($"{this}: {values.Length} values but {grads.Length} gradients.", nameof(grads));
        int at = 0;
        while (at < count)
        {
            float scale = ScaleAt(Offset + from + at, out int runEnd);
            int end = Math.Min(count, runEnd - Offset - from);
            while (end < count && ScaleAt(Offset + from + end, out int next) == scale) end = Math.Min(count, next - Offset - from);
            if (at == 0 && end == count && from == 0 && count == Length && scale == 1f) { Inner.Step(values, grads, lr, t); return; }
            Inner.StepSegment(values[at..end], grads[at..end], scale == 1f ? lr : lr * scale, t, from + at);
            at = end;
        }
    }

    /// <summary>The factor at flat index <paramref name="i"/> and where the run it belongs to ends.</summary>
    private float ScaleAt(int i, out int runEnd)
    {
        foreach (var g in _groups)
        {
            if (i < g.Offset) { runEnd = g.Offset; return 1f; }
            if (i < g.End) { runEnd = g.End; return g.LrScale; }
        }
        runEnd = int.MaxValue;
        return 1f;
    }

    // Independent of Bind, so every shard's optimizer and a checkpoint's agree on it.
    public override string ToString() =>
        $"{Inner} groups [{string.Join(", ", _groups.Select(g => $"{g.Name} [{g.Offset}, {g.End}) lr×{g.LrScale.ToString(System.Globalization.CultureInfo.InvariantCulture)}"))}]";
}
