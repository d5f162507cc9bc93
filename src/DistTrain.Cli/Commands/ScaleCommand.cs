// `disttrain scale`: one scaling experiment — a grid of worker-process counts, ps-process counts, modes, micro-batches
// and compressions, each run as a local multi-process cluster (Scale/ClusterLauncher) on loopback or on emulated hosts
// (network namespaces, tbf-shaped links), with a delay on every link between hosts (--latency, Scale/LatencyRelay),
// optionally with simulated compute, each to completion with progress on the
// console, then OUT/report.md, OUT/results.json and plots (docs/scale.md).
using System.CommandLine;
using System.Globalization;
using DistTrain.Cli.Scale;
using DistTrain.Cli.Sweep;
using DistTrain.Cli.Training;
using DistTrain.Cluster.Training;

namespace DistTrain.Cli.Commands;

public sealed class ScaleCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Preset or model spec .json file every run trains.", DefaultValueFactory = _ => "cnn" };
        var dataset = new Option<string?>("--dataset", "-d") { Description = "Dataset of every run (default: the model's); every process loads it." };
        var workers = new Option<string>("--workers") { Description = "Worker processes, a comma-separated list, e.g. 1,2,4,8.", DefaultValueFactory = _ => "1,2" };
        var psNodes = new Option<string>("--ps-nodes") { Description = "Parameter-server processes (one shard each; 0 = the coordinator's process holds one shard), a list.", DefaultValueFactory = _ => "1" };
        var mode = new Option<string>("--mode") { Description = "Training modes, a list of sync, async, local-sgd.", DefaultValueFactory = _ => "sync" };
        var micro = new Option<string>("--micro-batch") { Description = "Micro-batch sizes, a list.", DefaultValueFactory = _ => "32" };
        var batch = new Option<int?>("--batch-size") { Description = "Global batch of every run (default: the micro-batch × the largest worker count, so every run trains the same steps)." };
        var compression = new Option<string>("--compression") { Description = "Gradient compressions, a list of none, bf16, fp16, int8, topk (sync mode).", DefaultValueFactory = _ => "none" };
        var simulate = new Option<string>("--simulate-compute") { Description = $"Workers wait instead of computing: off, {SimulateComputeOption.Help.Replace("on this node at start", "here once, before the runs")}.", DefaultValueFactory = _ => "off" };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps per run.", DefaultValueFactory = _ => 40 };
        var warmup = new Option<int?>("--warmup") { Description = "Steps left out of the figures at the start of each run (default: a quarter of --steps)." };
        var network = new Option<string>("--network") { Description = "loopback (every process on 127.0.0.1) or namespaces (one emulated host per process; needs root).", DefaultValueFactory = _ => "loopback" };
        var bandwidth = new Option<string?>("--bandwidth") { Description = "With --network namespaces: each host's link rate each way (tbf), e.g. 1gbit or 100mbit; the report adds the link-bound ideal." };
        var latency = new Option<string?>("--latency") { Description = "One-way delay of every connection between two hosts (each direction; a round trip is twice it), e.g. 50ms: a relay in user space in front of each host's listeners (this kernel has no netem)." };
        var localSteps = new Option<int?>("--local-steps") { Description = "Local-sgd runs: local steps H between two averagings (train's --local-steps)." };
        var outerOptimizer = new Option<string?>("--outer-optimizer") { Description = "Local-sgd runs: average, sgd or nesterov (DiLoCo) on the averaged delta (train's --outer-optimizer)." };
        var outerLr = new Option<float?>("--outer-lr") { Description = "Local-sgd runs with --outer-optimizer sgd|nesterov: the outer learning rate (train's --outer-lr)." };
        var outerMomentum = new Option<float?>("--outer-momentum") { Description = "Local-sgd runs with --outer-optimizer nesterov: the outer momentum (train's --outer-momentum)." };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs of every run (sets a cosine schedule's length, as train's --epochs; default: unlimited, --steps ends each run)." };
        var target = new Option<double?>("--target-accuracy") { Description = "Report the training seconds until the test accuracy reaches this (0..1; epoch records, so give epochs' worth of --steps)." };
        var threads = new Option<int>("--threads") { Description = "Compute threads of each worker process (and of the measurement with --simulate-compute measured).", DefaultValueFactory = _ => 1 };
        var output = new Option<string?>("--out", "-o") { Description = "Experiment folder: a run folder per grid point (logs, metrics.jsonl), report.md, results.json, plots (default: runs/scale-<model>)." };
        var timeout = new Option<double>("--run-timeout") { Description = "Minutes a run may take before it is stopped and reported as failed.", DefaultValueFactory = _ => 10 };
        var disttrain = new Option<string?>("--disttrain") { Description = "The disttrain the processes run: an executable or disttrain.dll (default: this one)." };
        var cmd = new Command("scale", "Scaling experiment: a grid of local multi-process clusters (optionally emulated hosts and simulated compute), written up as report.md with plots.")
        {
            model, dataset, workers, psNodes, mode, micro, batch, compression, simulate, steps, warmup, network, bandwidth, target, threads, output, timeout, disttrain,
        };
        foreach (var o in new Option[] { latency, localSteps, outerOptimizer, outerLr, outerMomentum, epochs }) cmd.Add(o);
        cmd.SetAction((r, cancel) => Task.FromResult(CliErrors.Guard(() =>
        {
            var points = ScaleGrid.Points(ScaleGrid.Ints(r.GetValue(workers)!, "--workers", 1), ScaleGrid.Ints(r.GetValue(psNodes)!, "--ps-nodes", 0),
                ScaleGrid.Names(r.GetValue(mode)!, "--mode", ScaleGrid.Modes), ScaleGrid.Ints(r.GetValue(micro)!, "--micro-batch", 1),
                ScaleGrid.Names(r.GetValue(compression)!, "--compression", ScaleGrid.Compressions));
            int n = r.GetValue(steps), warm = r.GetValue(warmup) ?? r.GetValue(steps) / 4, th = r.GetValue(threads);
            if (n < 1) throw new ArgumentException($"--steps must be at least 1, not {n}.");
            if (warm < 0 || warm >= n) throw new ArgumentException($"--warmup ({warm}) must be at least 0 and below --steps ({n}).");
            if (r.GetValue(epochs) is < 1) throw new ArgumentException($"--epochs must be at least 1, not {r.GetValue(epochs)}.");
            if (th < 1) throw new ArgumentException($"--threads must be at least 1, not {th}.");
            if (r.GetValue(batch) is { } b && points.Any(p => b < p.MicroBatch))
                throw new ArgumentException($"--batch-size {b} is below a micro-batch of the grid; give at least {points.Max(p => p.MicroBatch)}.");
            if (r.GetValue(target) is { } t && !(t > 0 && t <= 1)) throw new ArgumentException($"--target-accuracy {t} is not in (0, 1]; give e.g. 0.85.");
            var net = r.GetValue(network)!.ToLowerInvariant();
            if (net is not ("loopback" or "namespaces")) throw new ArgumentException($"--network {net} is not loopback or namespaces.");
            var rate = r.GetValue(bandwidth);
            if (rate is not null && net != "namespaces") throw new ArgumentException("--bandwidth shapes the links between emulated hosts; add --network namespaces (needs root).");
            double? bytesPerSecond = rate is null ? null : ScaleGrid.ParseRate(rate);
            TimeSpan? delay = r.GetValue(latency) is { } l ? ScaleGrid.ParseLatency(l) : null;
            var localSgd = new List<string>();
            if (r.GetValue(localSteps) is { } h) localSgd.AddRange(["--local-steps", h.ToString(CultureInfo.InvariantCulture)]);
            if (r.GetValue(outerOptimizer) is { } oo) localSgd.AddRange(["--outer-optimizer", oo]);
            if (r.GetValue(outerLr) is { } olr) localSgd.AddRange(["--outer-lr", olr.ToString(CultureInfo.InvariantCulture)]);
            if (r.GetValue(outerMomentum) is { } om) localSgd.AddRange(["--outer-momentum", om.ToString(CultureInfo.InvariantCulture)]);
            if (localSgd.Count > 0 && !points.Any(p => p.Mode == "local-sgd"))
                throw new ArgumentException("--local-steps and --outer-optimizer, -lr, -momentum apply to local-sgd runs; add --mode local-sgd (or drop them).");
            var sim = SimulateComputeOption.Parse(r.GetValue(simulate));

            var modelName = r.GetValue(model)!;
            long parameters = BenchTrainCommand.NewStep(modelName, 1).Net.ParameterCount;
            var outDir = r.GetValue(output) ?? Path.Combine("runs", "scale-" + Path.GetFileNameWithoutExtension(modelName));
            if (File.Exists(Path.Combine(outDir, ScaleReport.ResultsFile)))
                throw new ArgumentException($"{outDir} already holds an experiment ({ScaleReport.ResultsFile}); pick another --out or delete it.");
            Directory.CreateDirectory(outDir);
            outDir = Path.GetFullPath(outDir);

            string simulateText = "real (forward and backward)";
            string? simArg = null;
            if (sim is not null)
            {
                double ms = sim.Milliseconds ?? MeasureMicroBatch(modelName, points.Max(p => p.MicroBatch), th);
                simArg = ms.ToString("0.###", CultureInfo.InvariantCulture);
                simulateText = FormattableString.Invariant($"simulated: each micro-batch waits {ms:0.##} ms") +
                    (sim.Milliseconds is null ? $" (measured here with {th} thread(s), micro-batch {points.Max(p => p.MicroBatch)})" : "") +
                    " and sends a fixed gradient pattern of the model's size; accuracy means nothing";
                Console.WriteLine($"scale: {simulateText}");
            }
            var config = Path.Combine(outDir, "cluster.hocon");
            // Dozens of processes share a few cores: joining, the first heartbeats and handshakes take longer than on idle hosts,
            // and a node must not be removed for a pause the shared machine caused.
            File.WriteAllText(config, """
                disttrain { join-timeout = 600s, data-plane.host = "" }
                akka.cluster.failure-detector.acceptable-heartbeat-pause = 60s
                akka.cluster.split-brain-resolver.stable-after = 30s
                akka.remote.dot-netty.tcp.connection-timeout = 60s
                akka.remote.handshake-timeout = 60s
                """);
            var settings = new LaunchSettings(ProcessTrialRunner.ResolveDisttrain(r.GetValue(disttrain)), modelName, r.GetValue(dataset), n, warm, th, simArg, config,
                TimeSpan.FromMinutes(r.GetValue(timeout))) { Latency = delay, LinkBytesPerSecond = bytesPerSecond, LocalSgdArgs = localSgd, Epochs = r.GetValue(epochs) };
            string networkText = net == "loopback" ? "loopback: every process on 127.0.0.1 of this machine"
                : $"emulated hosts: a network namespace per process on one bridge, {(rate is null ? "unshaped veth links" : $"each host's link shaped to {rate} each way (tbf)")}";
            networkText += delay is { } d
                ? FormattableString.Invariant($"; every connection between two hosts delayed {d.TotalMilliseconds:0.###} ms each way (round trip {2 * d.TotalMilliseconds:0.###} ms) by a relay in user space")
                : "; no added latency";
            var description = new ScaleDescription("disttrain " + string.Join(" ", r.Tokens.Select(x => x.Value)), modelName, r.GetValue(dataset), parameters,
                n, warm, networkText, bytesPerSecond, simulateText, r.GetValue(target) ?? double.NaN) { Epochs = r.GetValue(epochs) };

            using var hosts = net == "namespaces" ? HostNetwork.Create(rate) : null;
            var launcher = new ClusterLauncher(settings, hosts, Console.Out);
            var results = new List<ScaleResult>();
            for (int i = 0; i < points.Count; i++)
            {
                var p = points[i];
                int globalBatch = r.GetValue(batch) ?? p.MicroBatch * points.Max(q => q.Workers);
                Console.WriteLine($"scale: run {i + 1}/{points.Count}: {p.Name} (batch {globalBatch}) ...");
                var runDir = Path.Combine(outDir, p.Name);
                var (error, cpu) = launcher.RunAsync(p, globalBatch, runDir, cancel).GetAwaiter().GetResult();
                RunSummary? summary = null;
                if (error is null)
                {
                    try { summary = RunSummary.Read(runDir, p.Workers, warm, r.GetValue(target) ?? double.NaN); }
                    catch (Exception e) when (e is ArgumentException or FormatException or System.Text.Json.JsonException) { error = e.Message; }
                }
                Console.WriteLine(summary is { } s
                    ? string.Create(CultureInfo.InvariantCulture, $"scale: {p.Name}: {s.SamplesPerSecond:F1} samples/s, step {s.StepMs:F1} ms, {s.BytesPerStep / 1e6:F2} MB/step")
                    : $"scale: {p.Name} failed: {error}");
                results.Add(new ScaleResult(p, globalBatch, summary, error) { Cpu = cpu });
            }
            var derived = ScaleReport.Derive(results, parameters, bytesPerSecond, delay?.TotalSeconds ?? 0);
            IReadOnlyList<string> plots;
            try { plots = ScalePlots.Write(derived, outDir); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Console.WriteLine($"scale: plots not drawn ({e.GetType().Name}: {e.Message})");
                plots = [];
            }
            File.WriteAllText(Path.Combine(outDir, ScaleReport.ResultsFile), ScaleReport.Json(derived));
            File.WriteAllText(Path.Combine(outDir, ScaleReport.ReportFile), ScaleReport.Markdown(description, derived, plots, ScaleReport.Machine()));
            Console.WriteLine($"scale: {results.Count(x => x.Summary is not null)} of {results.Count} runs finished; report: {Path.Combine(outDir, ScaleReport.ReportFile)}");
            return results.All(x => x.Summary is not null) ? 0 : 1;
        })));
        return cmd;
    }

    /// <summary>--simulate-compute measured: one real micro-batch's median time here, before any process starts.</summary>
    private static double MeasureMicroBatch(string modelName, int microBatch, int threads)
    {
        DistTrain.Tensors.Compute.Threads = threads;
        var (_, _, trainer, data, _) = BenchTrainCommand.NewStep(modelName, microBatch);
        return SimulatedCompute.Measure(trainer, data, microBatch);
    }
}
