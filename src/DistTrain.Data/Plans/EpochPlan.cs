// The epoch plan of DESIGN.md: a permutation of the sample indices drawn from (seed, epoch) alone,
// cut into global batches of B, each cut into fixed micro-batches of M. Pure and immutable.
namespace DistTrain.Data.Plans;

/// <summary>
/// Batches: Steps = N / B with dropLast (the default; the tail of the permutation is unused), else
/// ceil(N / B) with a smaller last step. Micro-batches: each step is cut into chunks of M from its
/// start; when M does not divide the step, the LAST micro-batch of the step is smaller (never an
/// error, so a kept partial batch works too). Global step = StepsPerEpoch × Epoch + StepInEpoch.
/// </summary>
public sealed class EpochPlan
{
    // Domain key of the shuffle stream, so no other use of (seed, epoch) repeats its draws.
    const ulong ShuffleDomain = 0x45504F4348504C4E; // "EPOCHPLN"

    readonly int[] _permutation;

    EpochPlan(int seed, int epoch, int[] permutation, int globalBatch, int microBatch, bool dropLast, bool shuffled)
    {
        Seed = seed; Epoch = epoch; _permutation = permutation; GlobalBatch = globalBatch; MicroBatchSize = microBatch;
        DropLast = dropLast; Shuffled = shuffled;
        Steps = CountSteps(permutation.Length, globalBatch, dropLast);
    }

    /// <summary>The plan for one epoch: a seeded Fisher–Yates permutation of 0..sampleCount−1.</summary>
    public static EpochPlan Create(int seed, int epoch, int sampleCount, int globalBatch, int microBatch, bool dropLast = true)
    {
        Check(epoch, sampleCount, globalBatch, microBatch, dropLast);
        var perm = Identity(sampleCount);
        Xoshiro256.ForKey(ShuffleDomain, unchecked((ulong)seed), unchecked((ulong)epoch)).Shuffle(perm);
        return new EpochPlan(seed, epoch, perm, globalBatch, microBatch, dropLast, shuffled: true);
    }

    /// <summary>An unshuffled plan (samples in file order), e.g. for evaluation; by default keeps the last partial batch.</summary>
    public static EpochPlan CreateSequential(int sampleCount, int globalBatch, int microBatch, bool dropLast = false, int epoch = 0)
    {
        Check(epoch, sampleCount, globalBatch, microBatch, dropLast);
        return new EpochPlan(0, epoch, Identity(sampleCount), globalBatch, microBatch, dropLast, shuffled: false);
    }

    /// <summary>Steps per epoch for these sizes (the same for every epoch).</summary>
    public static int CountSteps(int sampleCount, int globalBatch, bool dropLast = true)
    {
        if (globalBatch < 1) throw new ArgumentOutOfRangeException(nameof(globalBatch), globalBatch, "The global batch size must be at least 1.");
        return dropLast ? sampleCount / globalBatch : (int)(((long)sampleCount + globalBatch - 1) / globalBatch);
    }

    /// <summary>The (epoch, step within epoch) of a global step, for resuming at an exact data position.</summary>
    public static (int Epoch, int StepInEpoch) Locate(long globalStep, int stepsPerEpoch)
    {
        if (stepsPerEpoch < 1) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), stepsPerEpoch, "Steps per epoch must be at least 1.");
        if (globalStep < 0) throw new ArgumentOutOfRangeException(nameof(globalStep), globalStep, "A global step cannot be negative.");
        return ((int)(globalStep / stepsPerEpoch), (int)(globalStep % stepsPerEpoch));
    }

    public int Seed { get; }
    public int Epoch { get; }
    public int SampleCount => _permutation.Length;
    public int GlobalBatch { get; }
    public int MicroBatchSize { get; }
    public bool DropLast { get; }
    public bool Shuffled { get; }
    /// <summary>Global batches in this epoch.</summary>
    public int Steps { get; }
    /// <summary>Global step index of this epoch's first step.</summary>
    public long FirstStep => (long)Steps * Epoch;
    /// <summary>Samples used per epoch (N, or N − N mod B with dropLast).</summary>
    public int SamplesUsed => DropLast ? Steps * GlobalBatch : SampleCount;
    /// <summary>The whole permutation (including a dropped tail).</summary>
    public ReadOnlySpan<int> Permutation => _permutation;

    public long GlobalStep(int stepInEpoch) { CheckStep(stepInEpoch); return FirstStep + stepInEpoch; }

    /// <summary>Samples in a step: B, or fewer for a kept partial last batch.</summary>
    public int StepSize(int stepInEpoch)
    {
        CheckStep(stepInEpoch);
        return Math.Min(GlobalBatch, SampleCount - stepInEpoch * GlobalBatch);
    }

    public int MicroBatchCount(int stepInEpoch) => (StepSize(stepInEpoch) + MicroBatchSize - 1) / MicroBatchSize;

    /// <summary>The micro-batches of a step (0-based within the epoch), in index order.</summary>
    public MicroBatchList MicroBatches(int stepInEpoch) => new(this, stepInEpoch);

    public MicroBatch GetMicroBatch(int stepInEpoch, int index)
    {
        int stepSize = StepSize(stepInEpoch);
        int count = (stepSize + MicroBatchSize - 1) / MicroBatchSize;
        if ((uint)index >= (uint)count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Step {stepInEpoch} has {count} micro-batches.");
        int start = index * MicroBatchSize;
        return new MicroBatch(Epoch, FirstStep + stepInEpoch, stepInEpoch, index, count,
            stepInEpoch * GlobalBatch + start, Math.Min(MicroBatchSize, stepSize - start), stepSize);
    }

    /// <summary>The micro-batch with this global step and index (the ids carried on the wire).</summary>
    public MicroBatch MicroBatchAt(long globalStep, int index)
    {
        if (globalStep < FirstStep || globalStep >= FirstStep + Steps)
            throw new ArgumentOutOfRangeException(nameof(globalStep), globalStep, $"Epoch {Epoch} holds global steps {FirstStep}..{FirstStep + Steps - 1}.");
        return GetMicroBatch((int)(globalStep - FirstStep), index);
    }

    /// <summary>The sample indices of a micro-batch: a view into the permutation, no copy.</summary>
    public ReadOnlySpan<int> Indices(in MicroBatch microBatch)
    {
        if (microBatch.Epoch != Epoch || microBatch.Offset < 0 || microBatch.Size < 0 || microBatch.Offset + microBatch.Size > SamplesUsed)
            throw new ArgumentException($"{microBatch} does not belong to the plan of epoch {Epoch} ({SamplesUsed} samples used).", nameof(microBatch));
        return _permutation.AsSpan(microBatch.Offset, microBatch.Size);
    }

    /// <summary>The sample indices of a whole global batch.</summary>
    public ReadOnlySpan<int> StepIndices(int stepInEpoch) => _permutation.AsSpan(stepInEpoch * GlobalBatch, StepSize(stepInEpoch));

    public override string ToString() =>
        $"EpochPlan(seed={Seed}, epoch={Epoch}, samples={SampleCount}, batch={GlobalBatch}, micro={MicroBatchSize}, steps={Steps}{(DropLast ? ", drop-last" : "")})";

    void CheckStep(int stepInEpoch)
    {
        if ((uint)stepInEpoch >= (uint)Steps)
            throw new ArgumentOutOfRangeException(nameof(stepInEpoch), stepInEpoch, $"Epoch {Epoch} has steps 0..{Steps - 1}.");
    }

    static void Check(int epoch, int sampleCount, int globalBatch, int microBatch, bool dropLast)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "The epoch must be 0 or more.");
        if (sampleCount < 1) throw new ArgumentOutOfRangeException(nameof(sampleCount), sampleCount, "An epoch plan needs at least one sample.");
        if (globalBatch < 1) throw new ArgumentOutOfRangeException(nameof(globalBatch), globalBatch, "The global batch size must be at least 1.");
        if (microBatch < 1 || microBatch > globalBatch)
            throw new ArgumentOutOfRangeException(nameof(microBatch), microBatch, $"The micro-batch size must lie in 1..{globalBatch} (the global batch size).");
        if (dropLast && sampleCount < globalBatch)
            throw new ArgumentException($"The dataset has {sampleCount} samples, fewer than one global batch of {globalBatch}, so dropping the partial batch leaves nothing. Use a batch size ≤ {sampleCount} or keep the last batch.", nameof(globalBatch));
    }

    static int[] Identity(int n)
    {
        var a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        return a;
    }
}
