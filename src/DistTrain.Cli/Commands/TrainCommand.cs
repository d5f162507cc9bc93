// `disttrain train`: trains a preset or a JSON spec on a dataset and writes DIR/model.safetensors
// (+ optimizer state beside it) and DIR/metrics.jsonl. Hyper-parameters not given come from the
// preset's documented defaults (Presets.Defaults; docs/accuracy.md). --workers 1 runs in-process.
using System.CommandLine;
using System.Globalization;
using DistTrain.Cli.Training;
using DistTrain.Cluster.Training;
using DistTrain.Data.Augmentation;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
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
        var dataset = new Option<string?>("--dataset", "-d") { Description = "fashion-mnist[:DIR] | idx:DIR | csv:FILE[:label=COL] | synthetic:NAME[:n=N] | graph:karate|sbm[:OPTIONS] (default: the preset's)." };
        var epochs = new Option<int?>("--epochs", "-e") { Description = "Epochs (default: the preset's)." };
        var batch = new Option<int?>("--batch-size", "-b") { Description = "Global batch B: samples per optimizer step (default: the preset's)." };
        var micro = new Option<int>("--micro-batch") { Description = "Micro-batch M ≤ B, the unit of work (default: B)." };
        var optimizer = new Option<string?>("--optimizer") { Description = "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, or ridge (the last dense layer in closed form, λ = --weight-decay; esn) (default: the preset's)." };
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
        var psLocal = new Option<int?>("--ps-local") { Description = "Shards this process hosts (default: all of --ps-shards); the others are taken by `disttrain node --roles ps` processes that join." };
        var clusterPort = new Option<int>("--cluster-port") { Description = "Listen for worker processes on this Akka port (this process is the seed node).", DefaultValueFactory = _ => 0 };
        var waitWorkers = new Option<int>("--wait-workers") { Description = "Workers (local + joining processes) to wait for before step 0 (default: --workers).", DefaultValueFactory = _ => 0 };
        var hostname = new Option<string?>("--hostname") { Description = "With --cluster-port: the address this seed node binds and advertises (default from --config: 127.0.0.1 for local)." };
        var config = new Option<string>("--config") { Description = "With --cluster-port: cluster config environment, local or multinode, or a .hocon file (cluster-config/*.hocon).", DefaultValueFactory = _ => "local" };
        var mode = new Option<string>("--mode") { Description = "Training mode (cluster runtime): sync (deterministic), async (bounded staleness) or local-sgd (H local steps, then averaging). See docs/modes.md.", DefaultValueFactory = _ => "sync" };
        var staleness = new Option<int?>("--staleness") { Description = $"Async: a worker more than S versions behind the newest waits for fresh parameters before computing (default {ModeOptions.DefaultStaleness})." };
        var localSteps = new Option<int?>("--local-steps") { Description = $"Local-sgd: local optimizer steps H between two averagings (default {ModeOptions.DefaultLocalSteps})." };
        var outerOptimizer = new Option<string?>("--outer-optimizer") { Description = "Local-sgd: what the shards do with a round's averaged delta: average (default: plain averaging), sgd, or nesterov (DiLoCo's outer Nesterov momentum). See docs/modes.md." };
        var outerLr = new Option<float?>("--outer-lr") { Description = $"Local-sgd with --outer-optimizer sgd|nesterov: the outer learning rate (default: nesterov {OuterOptimizer.DefaultNesterovLr}, sgd 1)." };
        var outerMomentum = new Option<float?>("--outer-momentum") { Description = $"Local-sgd with --outer-optimizer nesterov: the outer momentum in [0, 1) (default {OuterOptimizer.DefaultNesterovMomentum})." };
        var checkpointEvery = new Option<long>("--checkpoint-every") { Description = "Also write DIR/checkpoint/step-N every N steps (checkpoints are written at every epoch end; -1 = none)." };
        var resume = new Option<string?>("--resume") { Description = "Resume from the newest good checkpoint in this run folder (the output folder by default)." };
        var allowUnverified = new Option<bool>("--allow-unverified") { Description = "With --resume: accept checkpoint files whose SHA-256 manifest (.sha256) is missing, unchecked (refused by default)." };
        var (tlsCert, tlsCa, insecure) = SecurityOptions.Create();
        var standardize = new Option<string>("--standardize") { Description = Models.ModelForData.StandardizeHelp, DefaultValueFactory = _ => "auto" };
        var metricsPort = new Option<int>("--metrics-port") { Description = "Serve live metrics for Prometheus at http://HOST:N/metrics while training (0 = off; docs/metrics.md)." };
        var compression = new Option<string>("--compression") { Description = "Gradient compression on the data plane: none, bf16, fp16, int8 (a float32 scale per 256 values) or topk (10 of every 1,024 values, with error feedback); sync mode. One process rounds each micro-batch gradient the same way, so it still equals the cluster bit for bit (topk: a one-worker cluster; docs/modes.md).", DefaultValueFactory = _ => "none" };
        var metricsHost = new Option<string>("--metrics-host") { Description = "Interface the metrics endpoint listens on (default 127.0.0.1: this machine only; 0.0.0.0 = every interface).", DefaultValueFactory = _ => "127.0.0.1" };
        var standby = new Option<string?>("--standby") { Description = "Run a standby coordinator for the job of the coordinator at this seed address (akka.tcp://disttrain@HOST:PORT), with the same job options and --out: when the coordinator's node dies this process takes the run over (shards and workers must run on `disttrain node` processes). Exits when the run ends." };
        var verifyFraction = new Option<double>("--verify-fraction") { Description = "Cluster, sync mode: a seeded fraction F (0..1) of micro-batches is also computed by a second, otherwise idle worker, and the shards compare the two gradients' checksums; a difference (silent data corruption, a faulty host) is reported naming both workers. Copies that faults make are always compared." };
        var cmd = new Command("train", "Train a model and write DIR/model.safetensors and DIR/metrics.jsonl.")
        {
            model, dataset, epochs, batch, micro, optimizer, lr, schedule, wd, augment, clip, seed, maxSteps, threads, init, output, workers, psShards, psLocal, clusterPort, waitWorkers,
            hostname, config, mode, staleness, localSteps, checkpointEvery, resume, standardize, allowUnverified, tlsCert, tlsCa, insecure,
            metricsPort, metricsHost, compression, verifyFraction, standby,
        };
        foreach (var o in new Option[] { outerOptimizer, outerLr, outerMomentum }) cmd.Add(o);
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var name = r.GetValue(model)!;
            var d = Presets.Exists(name) ? Presets.Defaults(name) : SpecDefaults;
            var spec = Models.ModelForData.Resolve(name, r.GetValue(dataset) ?? d.Dataset, r.GetValue(standardize)!, Console.WriteLine);
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
                Compression = r.GetValue(compression)!,
            };
            job.TrainerOptions().Validate();
            var resumeDir = r.GetValue(resume);
            var outDir = r.GetValue(output) ?? resumeDir ?? Path.Combine("runs", spec.Name);
            var checkpoints = new CheckpointOptions(r.GetValue(checkpointEvery), resumeDir, AllowUnverified: r.GetValue(allowUnverified));
            if (resumeDir is not null && r.GetValue(init) is not null) throw new ArgumentException("--init and --resume exclude each other: --resume continues a run, --init starts a new one from weights.");
            Compute.Threads = t;
            var outer = r.GetValue(outerOptimizer) is null && r.GetValue(outerLr) is null && r.GetValue(outerMomentum) is null ? null
                : OuterOptimizer.Parse(r.GetValue(outerOptimizer), r.GetValue(outerLr), r.GetValue(outerMomentum));
            var modeOptions = ModeOptions.Parse(r.GetValue(mode), r.GetValue(staleness), r.GetValue(localSteps), outer);
            job = job with { Compression = DistTrain.Cluster.Runtime.JobMapping.CheckCompression(job, modeOptions) };
            // Async and local-sgd exist only in the cluster runtime, so they use it even with one worker.
            bool cluster = r.GetValue(standby) is not null || r.GetValue(workers) != 1 || r.GetValue(psShards) != 1 || r.GetValue(psLocal) is not null || r.GetValue(clusterPort) > 0 || r.GetValue(waitWorkers) > 0
                || modeOptions.Mode != DistTrain.Cluster.Messages.TrainingMode.Sync;
            using var metricsEndpoint = MetricsEndpoint.Start(r.GetValue(metricsPort), r.GetValue(metricsHost)!, Console.Out);
            if (job.Optimizer == "ridge")
                return cluster || r.GetValue(init) is not null || resumeDir is not null
                    ? throw new ArgumentException("--optimizer ridge fits the readout in one process in one pass; drop --workers/--ps-shards/--cluster-port/--mode/--init/--resume.")
                    : RidgeFitRun.Run(job, outDir, Console.Out);
            double verify = r.GetValue(verifyFraction);
            if (verify is < 0 or > 1 || double.IsNaN(verify)) throw new ArgumentException($"--verify-fraction {verify} must be between 0 and 1 (e.g. 0.05: one micro-batch in 20 computed twice).");
            if (verify > 0 && (!cluster || modeOptions.Mode != DistTrain.Cluster.Messages.TrainingMode.Sync))
                throw new ArgumentException("--verify-fraction compares two workers' copies of a micro-batch: it needs a sync cluster run with at least 2 workers (--workers N or --wait-workers N).");
            if (cluster)
            {
                if (r.GetValue(init) is { } initFile)
                {
                    if (modeOptions.Mode != DistTrain.Cluster.Messages.TrainingMode.Sync)
                        throw new ArgumentException($"--init works with --mode sync only on the cluster, not {modeOptions.Mode}; drop --init or use --mode sync.");
                    checkpoints = checkpoints with { InitFile = initFile };
                }
                using var stop = new CancellationTokenSource();
                Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
                return ClusterRun.Run(job, modeOptions, outDir, r.GetValue(workers), new ShardPlacement(r.GetValue(psShards), r.GetValue(psLocal)), r.GetValue(clusterPort), r.GetValue(waitWorkers), Console.Out, stop.Token,
                    r.GetValue(config)!, r.GetValue(hostname), checkpoints with { VerifyFraction = verify }, SecurityOptions.Overrides(r, tlsCert, tlsCa, insecure),
                    // stdout decides, not stdin: scripts/local-cluster.sh starts the coordinator in the background, stdin from /dev/null.
                    interactive: !Console.IsOutputRedirected && Spectre.Console.AnsiConsole.Profile.Capabilities.Ansi, standbyOf: r.GetValue(standby));
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
                return LocalRun.Run(job, outDir, r.GetValue(init), Console.Out, interactive, cancel.Token, checkpoints);
            }
            finally { Console.CancelKeyPress -= onCancel; }
        }));
        return cmd;
    }

    internal static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
