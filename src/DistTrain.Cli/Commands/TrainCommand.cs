// `disttrain train`: trains a preset or a JSON spec on a dataset and writes DIR/model.safetensors
// (+ optimizer state beside it) and DIR/metrics.jsonl. Hyper-parameters not given come from the
// preset's documented defaults (Presets.Defaults; docs/accuracy.md). --workers 1 runs in-process.
using System.CommandLine;
using System.Globalization;
using DistTrain.Cli.Training;
using DistTrain.Data.Augmentation;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class TrainCommand : ICommandFactory
{
    public string? Parent => null;

    /// <summary>Defaults for a spec file (not a preset).</summary>
    public static readonly PresetDefaults SpecDefaults = new("adam", 1e-3f, 5, 64, "constant", 0f, "fashion-mnist");

    public Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = $"Preset ({string.Join(", ", Presets.Names)}) or a model spec .json file.", Required = true };
        var dataset = new Option<string?>("--dataset", "-d") { Description = "fashion-mnist[:DIR] | idx:DIR | csv:FILE[:label=COL] | synthetic:NAME[:n=N] (default: the preset's)." };
        var epochs = new Option<int?>("--epochs", "-e") { Description = "Epochs (default: the preset's)." };
        var batch = new Option<int?>("--batch-size", "-b") { Description = "Global batch B: samples per optimizer step (default: the preset's)." };
        var micro = new Option<int>("--micro-batch") { Description = "Micro-batch M ≤ B, the unit of work (default: B)." };
        var optimizer = new Option<string?>("--optimizer") { Description = "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw (default: the preset's)." };
        var lr = new Option<float?>("--lr") { Description = "Base learning rate (default: the preset's)." };
        var schedule = new Option<string?>("--schedule") { Description = "constant | step:N:GAMMA | cosine[:T[:MIN]] | warmup:W[+...] (default: the preset's)." };
        var wd = new Option<float?>("--weight-decay") { Description = "L2 penalty (decoupled for adamw). Default: the optimizer's (0; adamw 0.01)." };
        var augment = new Option<string?>("--augment") { Description = "Training-time image augmentation: none | crop:P (zero-pad P, random crop back) | flip (random horizontal flip), comma-separated, e.g. crop:2,flip (default: the preset's)." };
        var clip = new Option<float>("--clip-norm") { Description = "Clip the gradient to this global L2 norm (0 = off)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the weights, the epoch plans and dropout.", DefaultValueFactory = _ => 1 };
        var maxSteps = new Option<long>("--max-steps") { Description = "Stop after this many optimizer steps (0 = no limit)." };
        var threads = new Option<int>("--threads") { Description = "Compute threads (results do not depend on it).", DefaultValueFactory = _ => 1 };
        var init = new Option<string?>("--init") { Description = "Start from the weights of this checkpoint (.safetensors)." };
        var output = new Option<string?>("--out", "-o") { Description = "Output folder (default: runs/<model>)." };
        var workers = new Option<int>("--workers") { Description = "Worker actors in this process; 1 (without the options below) trains without the cluster runtime.", DefaultValueFactory = _ => 1 };
        var psShards = new Option<int>("--ps-shards") { Description = "Parameter-server shards the flat parameter vector is split into (cluster runtime).", DefaultValueFactory = _ => 1 };
        var clusterPort = new Option<int>("--cluster-port") { Description = "Listen for worker processes on this Akka port (this process is the seed node).", DefaultValueFactory = _ => 0 };
        var waitWorkers = new Option<int>("--wait-workers") { Description = "Workers (local + joining processes) to wait for before step 0 (default: --workers).", DefaultValueFactory = _ => 0 };
        var cmd = new Command("train", "Train a model and write DIR/model.safetensors and DIR/metrics.jsonl.")
        {
            model, dataset, epochs, batch, micro, optimizer, lr, schedule, wd, augment, clip, seed, maxSteps, threads, init, output, workers, psShards, clusterPort, waitWorkers,
        };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var name = r.GetValue(model)!;
            var spec = Presets.Resolve(name);
            var d = Presets.Exists(name) ? Presets.Defaults(name) : SpecDefaults;
            int t = r.GetValue(threads);
            if (t < 1) throw new ArgumentException($"--threads must be at least 1, not {t}.");
            var job = new TrainJob
            {
                ModelSpecJson = spec.CanonicalJson,
                Dataset = r.GetValue(dataset) ?? d.Dataset,
                Epochs = r.GetValue(epochs) ?? d.Epochs,
                BatchSize = r.GetValue(batch) ?? d.BatchSize,
                MicroBatch = r.GetValue(micro),
                Optimizer = r.GetValue(optimizer) ?? d.Optimizer,
                Lr = r.GetValue(lr) ?? d.Lr,
                Schedule = r.GetValue(schedule) ?? d.Schedule,
                WeightDecay = r.GetValue(wd) ?? (d.WeightDecay == 0 ? null : d.WeightDecay),
                ClipNorm = r.GetValue(clip),
                Seed = r.GetValue(seed),
                MaxSteps = r.GetValue(maxSteps),
                Augment = ImageAugmentation.Parse(r.GetValue(augment) ?? d.Augment).ToString(),
            };
            job.TrainerOptions().Validate();
            var outDir = r.GetValue(output) ?? Path.Combine("runs", spec.Name);
            Compute.Threads = t;
            bool cluster = r.GetValue(workers) != 1 || r.GetValue(psShards) != 1 || r.GetValue(clusterPort) > 0 || r.GetValue(waitWorkers) > 0;
            if (cluster)
            {
                if (r.GetValue(init) is not null) throw new ArgumentException("--init is not supported by the cluster runtime yet; use --workers 1.");
                using var stop = new CancellationTokenSource();
                Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
                return ClusterRun.Run(job, outDir, r.GetValue(workers), r.GetValue(psShards), r.GetValue(clusterPort), r.GetValue(waitWorkers), Console.Out, stop.Token);
            }
            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); Console.Error.WriteLine("stopping after this step; the model so far will be saved"); };
            Console.CancelKeyPress += onCancel;
            // SIGTERM (timeout, a scheduler) also stops after the current step and saves what was learned.
            using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                cancel.Cancel();
                Console.Error.WriteLine("SIGTERM: stopping after this step; the model so far will be saved");
            });
            try
            {
                bool interactive = !Console.IsOutputRedirected && Spectre.Console.AnsiConsole.Profile.Capabilities.Interactive;
                return LocalRun.Run(job, outDir, r.GetValue(init), Console.Out, interactive, cancel.Token);
            }
            finally { Console.CancelKeyPress -= onCancel; }
        }));
        return cmd;
    }

    internal static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
