// Optimizer contract over a flat span (DESIGN contract 1): a PS shard owns one optimizer for its key
// range; state buffers have the range's length and layout. t is the 1-based update count.
namespace DistTrain.Nn.Optimizers;

public abstract class Optimizer
{
    protected Optimizer(int length) => Length = length;

    /// <summary>Number of parameters this optimizer updates (its state has this length).</summary>
    public int Length { get; }

    /// <summary>values -= update(grads); lr comes from the schedule for this step.</summary>
    public abstract void Step(Span<float> values, ReadOnlySpan<float> grads, float lr, long t);

    /// <summary>Whether <see cref="StepSegment"/> works: each value's update depends on its own gradient and state alone,
    /// so a part of the range can be stepped with its own learning rate (a parameter group).</summary>
    public virtual bool Segmentable => false;

    /// <summary>
    /// Updates only <paramref name="values"/> = this optimizer's [offset, offset + values.Length), with the state at that
    /// offset: the same bits as <see cref="Step"/> gives those values, since the update is elementwise (a parameter group).
    /// </summary>
    public virtual void StepSegment(Span<float> values, ReadOnlySpan<float> grads, float lr, long t, int offset) =>
        throw new NotSupportedException($"{this} cannot step a part of its range on its own; parameter groups need sgd, momentum, adam or adamw.");

    /// <summary>Flat state buffers (moments), named, for checkpoints.</summary>
    public virtual IReadOnlyList<(string Name, float[] Data)> State => [];

    public abstract override string ToString();
}
