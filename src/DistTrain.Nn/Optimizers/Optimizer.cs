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

    /// <summary>Flat state buffers (moments), named, for checkpoints.</summary>
    public virtual IReadOnlyList<(string Name, float[] Data)> State => [];

    public abstract override string ToString();
}
