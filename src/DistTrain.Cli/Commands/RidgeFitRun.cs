// `disttrain train --optimizer ridge`: fits a model's last dense layer in closed form (Nn/Solvers/RidgeReadout: the
// micro-batches' Σφφᵀ and Σφyᵀ summed in order, one Cholesky solve), λ = --weight-decay; the echo state network's
// training. One process only: the statistics are one pass, so there is nothing for workers to share step by step.
using System.Globalization;
using DistTrain.Cli.Training;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Training.Solvers;
using DistTrain.Nn.Training;
using DistTrain.Training;

namespace DistTrain.Cli.Commands;

internal static class RidgeFitRun
{
    public const double DefaultPenalty = 1e-6;

    public static int Run(TrainJob job, string outDir, TextWriter console)
    {
        var spec = job.Spec();
        var (train, test) = LocalRun.LoadData(job.Dataset, spec);
        var model = spec.Build((ulong)(uint)job.Seed);
        double ridge = job.WeightDecay ?? DefaultPenalty;
        int micro = job.MicroBatch > 0 ? job.MicroBatch : job.BatchSize;
        console.WriteLine($"data: {train.Name} ({train.Count:N0} train, {test.Count:N0} test samples of {DistTrain.Tensors.Tensor.ShapeString(train.SampleShape)})");
        console.WriteLine($"job: ridge readout λ={F(ridge)} micro-batch={micro} seed={job.Seed} spec-hash={spec.Hash[..12]}");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var fit = RidgeReadout.Fit(model, train, ridge, micro);
        double testNrmse = test.Count > 0 ? RidgeReadout.Nrmse(model, test) : double.NaN;
        console.WriteLine($"done: ridge fit on {fit.Rows:N0} steps in {sw.Elapsed.TotalSeconds:F1} s; one-step NRMSE train {F(fit.TrainNrmse)} | test {F(testNrmse)}");
        if (test.Count > 0 && spec.Input[^1] == 1 && spec.Output[^1] == 1 && test.Targets?.Length == test.Features.Length)
        {
            console.WriteLine($"baseline: persistence (next = current) one-step NRMSE test {F(RidgeReadout.PersistenceNrmse(model, test))}");
            if (model.Layers is [EchoStateReservoir { IncludeInput: true }, Dense] && test.SampleLength > 84 + model.Layers.OfType<EchoStateReservoir>().First().Washout)
            {
                var free = EchoStateForecast.FreeRun(model, test, 84);
                console.WriteLine($"free-running: 84-step NRMSE test {F(free.Nrmse)} | persistence {F(free.PersistenceNrmse)} ({free.Forecasts} forecasts)");
            }
        }
        Directory.CreateDirectory(outDir);
        var weights = Path.Combine(outDir, "model.safetensors");
        var extra = new Dictionary<string, string>
        {
            ["spec_hash"] = spec.Hash,
            ["job"] = System.Text.Json.JsonSerializer.Serialize(job with { ModelSpecJson = "" }),
            ["test_nrmse"] = F(testNrmse),
        };
        Checkpoint.Save(weights, model.Store, new CheckpointInfo(spec.CanonicalJson, 1, 1, job.Seed) { Extra = extra });
        console.WriteLine($"model:     {weights}");
        return 0;
    }

    private static string F(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}
