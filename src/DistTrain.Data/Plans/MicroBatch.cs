// One unit of pulled work (DESIGN.md contract 3): a fixed slice of one global batch of one epoch
// plan, identified by (Step, Index). Holds positions into the plan's permutation, not the samples.
namespace DistTrain.Data.Plans;

/// <param name="Epoch">The epoch of the plan it belongs to.</param>
/// <param name="Step">Global step index across epochs: StepsPerEpoch × Epoch + StepInEpoch.</param>
/// <param name="StepInEpoch">The global batch within the epoch, 0..Steps−1.</param>
/// <param name="Index">Position within the step, 0..CountInStep−1: the PS sums in this order.</param>
/// <param name="CountInStep">How many micro-batches the step has.</param>
/// <param name="Offset">Start of its slice of the epoch permutation.</param>
/// <param name="Size">Number of samples (the micro-batch size, or fewer for the step's last one).</param>
/// <param name="StepSize">Samples in the whole step (the global batch, or fewer for a kept partial batch).
/// Scale a summed per-sample gradient by 1/StepSize so the micro-batch gradients add up to the batch mean.</param>
public readonly record struct MicroBatch(int Epoch, long Step, int StepInEpoch, int Index, int CountInStep, int Offset, int Size, int StepSize)
{
    public override string ToString() => $"MicroBatch(epoch={Epoch}, step={Step}, mb={Index}/{CountInStep}, samples={Size})";
}

/// <summary>The micro-batches of one step, without allocating: index it or foreach over it.</summary>
public readonly struct MicroBatchList
{
    readonly EpochPlan _plan;
    readonly int _step;

    internal MicroBatchList(EpochPlan plan, int stepInEpoch) { _plan = plan; _step = stepInEpoch; Count = plan.MicroBatchCount(stepInEpoch); }

    public int Count { get; }
    public MicroBatch this[int index] => _plan.GetMicroBatch(_step, index);
    public Enumerator GetEnumerator() => new(this);

    public struct Enumerator(MicroBatchList list)
    {
        int _i = -1;
        public bool MoveNext() => ++_i < list.Count;
        public readonly MicroBatch Current => list[_i];
    }
}
