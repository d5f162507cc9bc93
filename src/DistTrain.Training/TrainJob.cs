// A training job: the model spec and every hyper-parameter, as plain values (what `disttrain train`
// resolves from its options and defaults, and what a cluster coordinator hands to its workers), plus
// the factories that turn it into a model, loss, optimizer, schedule and Trainer.
using DistTrain.Nn;
using DistTrain.Data.Augmentation;
using DistTrain.Nn.Losses;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;

namespace DistTrain.Training;

public sealed record TrainJob
{
    /// <summary>Canonical JSON of the model spec (ModelSpec.CanonicalJson).</summary>
    public required string ModelSpecJson { get; init; }
    /// <summary>Dataset spec: fashion-mnist | idx:DIR | csv:FILE | synthetic:NAME.</summary>
    public required string Dataset { get; init; }
    public int Epochs { get; init; } = 1;
    public int BatchSize { get; init; } = 64;
    /// <summary>0 = the batch size.</summary>
    public int MicroBatch { get; init; }
    public string Optimizer { get; init; } = "adam";
    public float Lr { get; init; } = 1e-3f;
    /// <summary>constant | cosine | step:N:GAMMA | warmup:N+... (LrSchedule.Parse).</summary>
    public string Schedule { get; init; } = "constant";
    /// <summary>null = the optimizer's default (0, or 0.01 for AdamW).</summary>
    public float? WeightDecay { get; init; }
    public float ClipNorm { get; init; }
    public int Seed { get; init; } = 1;
    public long MaxSteps { get; init; }
    /// <summary>Training-time image augmentation (ImageAugmentation.Parse): "none" | "crop:P,flip" | ...</summary>
    public string Augment { get; init; } = "none";
    /// <summary>Gradient compression on the data plane (GradientCodec.Parse): "none" | "bf16" | "fp16" | "int8".</summary>
    public string Compression { get; init; } = "none";

    public ModelSpec Spec() => ModelSpec.Parse(ModelSpecJson);

    public TrainerOptions TrainerOptions() => new()
    {
        Epochs = Epochs, BatchSize = BatchSize, MicroBatch = MicroBatch, Seed = Seed, MaxSteps = MaxSteps, ClipNorm = ClipNorm,
        Augmentation = ImageAugmentation.Parse(Augment), Compression = Steps.GradientCodec.Parse(Compression),
    };

    /// <summary>Optimizer updates the whole run takes (what a bare "cosine" anneals over).</summary>
    public long TotalSteps(int trainCount)
    {
        long perEpoch = trainCount / BatchSize; // the epoch plan drops the last partial batch
        long total = perEpoch * Epochs;
        return MaxSteps > 0 ? Math.Min(total, MaxSteps) : total;
    }

    /// <summary>The optimizer of a range of <paramref name="length"/> values; for a model with optimizer groups (a GAN) it
    /// steps each group with its own learning rate once a ParameterShard has placed it at its range.</summary>
    public Optimizer CreateOptimizer(int length)
    {
        var inner = OptimizerFactory.Create(Optimizer, length, new OptimizerOptions { WeightDecay = WeightDecay });
        var groups = ParameterGroups();
        return groups.Count == 0 ? inner : new GroupedOptimizer(inner, groups);
    }

    /// <summary>The spec's optimizer groups (Sequential.ParameterGroups); empty unless a layer declares them.</summary>
    public IReadOnlyList<ParameterGroup> ParameterGroups() => GroupsOf.GetValue(ModelSpecJson, json =>
    {
        var spec = ModelSpec.Parse(json);
        return spec.Layers.Any(l => l.Type == "gan") ? spec.Build().ParameterGroups() : [];
    });

    // The groups need the built model's layout: built once per spec string, and kept out of the record's fields (a job
    // crosses the wire and is compared by value).
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<string, IReadOnlyList<ParameterGroup>> GroupsOf = new();

    /// <summary>Learning rate for a 0-based step index.</summary>
    public Func<long, float> CreateSchedule(int trainCount)
    {
        var s = LrSchedule.Parse(Schedule, Lr, TotalSteps(trainCount));
        return step => s.At(step + 1);
    }

    /// <summary>Model (initialised from Seed), loss, optimizer and schedule, wired into a Trainer.</summary>
    public Trainer CreateTrainer(int trainCount, Sequential? model = null)
    {
        var spec = Spec();
        model ??= spec.Build((ulong)(uint)Seed);
        Loss loss = spec.CreateLoss();
        return new Trainer(model, loss, CreateOptimizer(model.ParameterCount), CreateSchedule(trainCount), TrainerOptions());
    }
}
