// The outer optimizer of local-sgd (DESIGN contract 5; DiLoCo, Douillard et al. 2023): a PS shard treats the round's
// averaged delta Δ = (Σ_c δ_c)·(1/C) as a pseudo-gradient −Δ and steps on it. `average` is θ += Δ (DeltaAveraging, no
// state); `sgd` is θ += η·Δ; `nesterov` is PyTorch's SGD(nesterov=True) on −Δ: b = μ·b + Δ; θ += η·(Δ + μ·b), its
// momentum buffer b being shard state (checkpoints, the coordinator's replicated state). Every update is plain multiplies
// and adds in a fixed order (never fused), so the bits depend on the inputs alone.
using DistTrain.Cluster.Messages;
using DistTrain.Nn.Optimizers;
using DistTrain.Training;

namespace DistTrain.Cluster.Training;

/// <summary>Which outer optimizer a local-sgd run uses and its two knobs, as the CLI gives them and the job carries them.</summary>
public sealed record OuterOptimizer(string Kind = OuterOptimizer.Average, float Lr = 1f, float Momentum = 0f)
{
    public const string Average = "average", Sgd = "sgd", Nesterov = "nesterov";
    public const float DefaultNesterovLr = 0.7f, DefaultNesterovMomentum = 0.9f;

    /// <summary>Today's local-sgd: the shard's values become the average of the chunks' parameters.</summary>
    public static OuterOptimizer Plain { get; } = new();

    /// <summary>
    /// Resolves --outer-optimizer, --outer-lr and --outer-momentum (null = not given): nesterov defaults to DiLoCo's
    /// η = 0.7, μ = 0.9; sgd to η = 1. A knob that does not belong to the optimizer, or an impossible value, is refused naming it.
    /// </summary>
    public static OuterOptimizer Parse(string? kind, float? lr, float? momentum)
    {
        var k = (kind ?? Average).Trim().ToLowerInvariant() switch
        {
            "average" or "none" => Average,
            "sgd" => Sgd,
            "nesterov" => Nesterov,
            _ => throw new ArgumentException($"--outer-optimizer '{kind}' is unknown; use average (plain averaging), sgd or nesterov."),
        };
        if (k == Average && (lr is not null || momentum is not null))
            throw new ArgumentException("--outer-lr and --outer-momentum need --outer-optimizer sgd or nesterov (plain averaging has no rate); add one or drop them.");
        if (k == Sgd && momentum is not null)
            throw new ArgumentException("--outer-momentum needs --outer-optimizer nesterov (sgd has no momentum); use nesterov or drop it.");
        var o = k switch
        {
            Nesterov => new OuterOptimizer(k, lr ?? DefaultNesterovLr, momentum ?? DefaultNesterovMomentum),
            Sgd => new OuterOptimizer(k, lr ?? 1f),
            _ => Plain,
        };
        o.Validate();
        return o;
    }

    public void Validate()
    {
        if (Kind is not (Average or Sgd or Nesterov)) throw new ArgumentException($"Outer optimizer '{Kind}' is unknown to this build; use average, sgd or nesterov.");
        if (!(Lr > 0) || float.IsInfinity(Lr)) throw new ArgumentException($"--outer-lr must be a positive number (DiLoCo uses 0.7), not {Lr}.");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentException($"--outer-momentum must be in [0, 1) (DiLoCo uses 0.9), not {Momentum}.");
        if (Kind == Average && (Lr != 1f || Momentum != 0f)) throw new ArgumentException("Plain averaging has outer lr 1 and no momentum.");
        if (Kind == Sgd && Momentum != 0f) throw new ArgumentException("--outer-momentum needs --outer-optimizer nesterov.");
    }

    public bool IsPlain => Kind == Average;

    /// <summary>The optimizer a PS shard applies a step (local-sgd: a round) with: the job's, or the outer one on the deltas.</summary>
    public static Optimizer ForShard(TrainJob job, ModeOptions mode, int length, int chunks) =>
        mode.Mode != TrainingMode.LocalSgd ? job.CreateOptimizer(length)
        : mode.Outer.IsPlain ? new DeltaAveraging(length, chunks)
        : new OuterNesterov(length, chunks, mode.Outer.Lr, mode.Outer.Momentum);

    public override string ToString() => IsPlain ? Average : Kind == Sgd ? $"sgd(lr={Lr})" : $"nesterov(lr={Lr}, momentum={Momentum})";
}

/// <summary>Outer SGD (μ = 0) or Nesterov momentum on the averaged delta of a local-sgd round (see the file's head).</summary>
public sealed class OuterNesterov : Optimizer
{
    private readonly float[] _b;

    public OuterNesterov(int length, int chunks, float lr, float momentum) : base(length)
    {
        if (chunks < 1) throw new ArgumentOutOfRangeException(nameof(chunks), chunks, "Averaging needs at least one chunk per round.");
        Chunks = chunks;
        Weight = 1f / chunks;
        Lr = lr;
        Momentum = momentum;
        _b = momentum > 0 ? new float[length] : [];
    }

    public int Chunks { get; }
    public float Weight { get; }
    public float Lr { get; }
    public float Momentum { get; }

    /// <summary>The momentum buffer b (of Δ, i.e. minus PyTorch's buffer of the pseudo-gradient); none for outer sgd.</summary>
    public override IReadOnlyList<(string Name, float[] Data)> State => Momentum > 0 ? [("outer_momentum", _b)] : [];

    /// <summary><paramref name="lr"/> (the inner schedule's) and <paramref name="t"/> are not used: the outer rate is constant.</summary>
    public override void Step(Span<float> values, ReadOnlySpan<float> deltaSum, float lr, long t)
    {
        if (values.Length != deltaSum.Length || values.Length != Length)
            throw new ArgumentException($"Outer step of {deltaSum.Length} deltas into {values.Length} values; the shard has {Length}.", nameof(deltaSum));
        float w = Weight, eta = Lr, mu = Momentum;
        if (mu == 0)
        {
            for (int i = 0; i < values.Length; i++) values[i] += eta * (deltaSum[i] * w);
            return;
        }
        var b = _b;
        for (int i = 0; i < values.Length; i++)
        {
            float d = deltaSum[i] * w;
            float m = mu * b[i] + d;
            b[i] = m;
            values[i] += eta * (d + mu * m);
        }
    }

    public override string ToString() => Momentum > 0 ? $"OuterNesterov(chunks={Chunks}, lr={Lr}, momentum={Momentum})" : $"OuterSgd(chunks={Chunks}, lr={Lr})";
}
