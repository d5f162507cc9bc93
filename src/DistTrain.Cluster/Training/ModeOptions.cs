// The training mode of a cluster run (DESIGN contract 5) and its two knobs, as the CLI gives them and
// the JobDescription carries them, plus the arithmetic that maps the epoch plan's steps onto the work
// units of each mode: sync hands out (step, micro-batch); async the same without a step barrier;
// local-sgd (round, chunk), where round r covers plan steps [rH, rH+H) and chunk c is micro-batch c of each.
using DistTrain.Cluster.Messages;

namespace DistTrain.Cluster.Training;

public sealed record ModeOptions(TrainingMode Mode, int Staleness = 0, int LocalSteps = 0)
{
    public const int DefaultStaleness = 4;
    public const int DefaultLocalSteps = 4;

    public static ModeOptions Sync { get; } = new(TrainingMode.Sync);

    /// <summary>Local-sgd: what the shards do with a round's averaged delta (OuterOptimizer; plain averaging by default).</summary>
    public OuterOptimizer Outer { get; init; } = OuterOptimizer.Plain;

    /// <summary>
    /// Resolves the CLI's --mode, --staleness and --local-steps (null = not given): a knob that does not belong to the
    /// mode, or an impossible value, is an error that names the option and the fix.
    /// </summary>
    public static ModeOptions Parse(string? mode, int? staleness, int? localSteps, OuterOptimizer? outer = null)
    {
        var m = (mode ?? "sync").Trim().ToLowerInvariant() switch
        {
            "sync" => TrainingMode.Sync,
            "async" => TrainingMode.Async,
            "local-sgd" or "localsgd" => TrainingMode.LocalSgd,
            _ => throw new ArgumentException($"--mode '{mode}' is unknown; use sync, async or local-sgd."),
        };
        if (staleness is not null && m != TrainingMode.Async)
            throw new ArgumentException($"--staleness applies only to --mode async (this run is {Name(m)}); drop it or add --mode async.");
        if (outer is { IsPlain: false } && m != TrainingMode.LocalSgd)
            throw new ArgumentException($"--outer-optimizer applies only to --mode local-sgd (this run is {Name(m)}); drop it or add --mode local-sgd.");
        if (localSteps is not null && m != TrainingMode.LocalSgd)
            throw new ArgumentException($"--local-steps applies only to --mode local-sgd (this run is {Name(m)}); drop it or add --mode local-sgd.");
        var o = m switch
        {
            TrainingMode.Async => new ModeOptions(m, Staleness: staleness ?? DefaultStaleness),
            TrainingMode.LocalSgd => new ModeOptions(m, LocalSteps: localSteps ?? DefaultLocalSteps) { Outer = outer ?? OuterOptimizer.Plain },
            _ => Sync,
        };
        o.Validate();
        return o;
    }

    public void Validate()
    {
        if (Staleness < 0) throw new ArgumentException($"--staleness must be 0 or more (versions a worker may lag behind), not {Staleness}.");
        if (Mode == TrainingMode.LocalSgd && LocalSteps < 1)
            throw new ArgumentException($"--local-steps must be at least 1 (local steps between two averagings), not {LocalSteps}.");
        Outer.Validate();
        if (!Outer.IsPlain && Mode != TrainingMode.LocalSgd)
            throw new ArgumentException($"--outer-optimizer applies only to --mode local-sgd (this run is {Name(Mode)}).");
        if (!Enum.IsDefined(Mode)) throw new ArgumentException($"Training mode {(int)Mode} is unknown to this build.");
    }

    public static string Name(TrainingMode m) => m switch { TrainingMode.Async => "async", TrainingMode.LocalSgd => "local-sgd", _ => "sync" };

    public string Name() => Name(Mode);

    public override string ToString() => Mode switch
    {
        TrainingMode.Async => $"async(staleness={Staleness})",
        TrainingMode.LocalSgd => Outer.IsPlain ? $"local-sgd(local_steps={LocalSteps})" : $"local-sgd(local_steps={LocalSteps}, outer={Outer})",
        _ => "sync",
    };

    /// <summary>Work units the coordinator runs with a barrier after each: plan steps (sync), rounds (local-sgd); async has no barrier (1 unit).</summary>
    public long Units(long planSteps) => Mode == TrainingMode.LocalSgd ? (planSteps + LocalSteps - 1) / LocalSteps : planSteps;

    /// <summary>Local-sgd: the plan steps of round <paramref name="round"/>, [first, first+count).</summary>
    public (long First, int Count) RoundSteps(long round, long planSteps)
    {
        long first = round * LocalSteps;
        return (first, (int)Math.Max(0, Math.Min(LocalSteps, planSteps - first)));
    }

    /// <summary>
    /// The first unit after <paramref name="unit"/> that completes a multiple of <paramref name="every"/> plan steps (an epoch end,
    /// --checkpoint-every): that step itself in sync; in local-sgd the round that contains it (rounds are what shards apply).
    /// </summary>
    public long NextUnitAtBoundary(long unit, long every)
    {
        if (Mode != TrainingMode.LocalSgd) return (unit / every + 1) * every;
        long boundary = (unit * LocalSteps / every + 1) * every;
        return (boundary + LocalSteps - 1) / LocalSteps;
    }

    /// <summary>The first plan step of a unit.</summary>
    public long FirstStepOf(long unit) => Mode == TrainingMode.LocalSgd ? unit * LocalSteps : unit;

    /// <summary>How the mode is recorded in metrics.jsonl and checkpoint metadata (a resume must match it, CheckpointSeries.Load).
    /// Local-sgd runs also record their outer optimizer (outer_optimizer, outer_lr, outer_momentum).</summary>
    public IReadOnlyDictionary<string, string> Metadata()
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        var d = new Dictionary<string, string>
        {
            ["mode"] = Name(),
            ["staleness"] = Staleness.ToString(c),
            ["local_steps"] = LocalSteps.ToString(c),
        };
        if (Mode != TrainingMode.LocalSgd) return d;
        d["outer_optimizer"] = Outer.Kind;
        d["outer_lr"] = Outer.Lr.ToString("R", c);
        d["outer_momentum"] = Outer.Momentum.ToString("R", c);
        return d;
    }

    /// <summary>The last plan step a unit completes (what a metrics line of that unit is labelled with).</summary>
    public long LastStepOf(long unit, long planSteps) =>
        Mode == TrainingMode.LocalSgd ? Math.Min(planSteps, (unit + 1) * LocalSteps) - 1 : unit;
}
