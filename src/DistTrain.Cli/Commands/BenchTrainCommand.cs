// `disttrain bench train`: training throughput (forward + backward + SGD update, one micro-batch = the
// batch) on random data of the model's input shape, as the TorchSharp peer measures it: warm-up, then the
// median of timed reps of ~1 s. Reports samples/s, managed bytes allocated per step and peak RSS (VmHWM).
using System.CommandLine;
using System.Diagnostics;
using DistTrain.Cli.Bench;
using DistTrain.Data;
using DistTrain.Nn.Models;
using DistTrain.Nn.Optimizers;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class BenchTrainCommand : ICommandFactory
{
    public string? Parent => "bench";

    public Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Preset(s) or spec file(s), comma separated.", DefaultValueFactory = _ => "mlp" };
        var batch = new Option<string>("--batch", "-b") { Description = "Batch size(s), comma separated.", DefaultValueFactory = _ => "64" };
        var threads = new Option<int>("--threads") { Description = "Compute threads.", DefaultValueFactory = _ => 1 };
        var reps = new Option<int>("--reps") { Description = "Timed repetitions (median reported).", DefaultValueFactory = _ => 5 };
        var seconds = new Option<double>("--rep-seconds") { Description = "Target length of one rep.", DefaultValueFactory = _ => 1.0 };
        var json = new Option<bool>("--json") { Description = "One JSON object per measurement per line." };
        var layers = new Option<bool>("--layers") { Description = "Also time each top-level layer's forward and backward (one extra rep; printed as a table, or JSON lines with \"layer\")." };
        var cmd = new Command("train", "Training throughput: forward + backward + update on random data, samples/s.")
        {
            model, batch, threads, reps, seconds, json, layers,
        };
        cmd.SetAction(r => Training.CliErrors.Guard(() =>
        {
            int t = r.GetValue(threads), n = r.GetValue(reps);
            if (t < 1) throw new ArgumentException($"--threads must be at least 1, not {t}.");
            if (n < 1) throw new ArgumentException($"--reps must be at least 1, not {n}.");
            var batches = r.GetValue(batch)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, out int v) && v > 0 ? v : throw new ArgumentException($"--batch: '{s}' is not a positive integer.")).ToArray();
            var models = r.GetValue(model)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Compute.Threads = t;
            var output = new BenchOutput(r.GetValue(json));
            var profiles = new List<Dictionary<string, object?>>();
            output.Note($"training step (forward+backward+SGD) on {Simd.Path}, {t} thread(s), median of {n} reps of ~{r.GetValue(seconds)} s");
            foreach (var m in models)
                foreach (int b in batches)
                {
                    output.Add(Measure(m, b, t, n, r.GetValue(seconds), r.GetValue(layers), out var profile));
                    profiles.AddRange(profile);
                }
            output.Flush();
            foreach (var row in profiles) output.Add(row);
            output.Flush();
            return 0;
        }));
        return cmd;
    }

    /// <summary>The throughput row; with <paramref name="profileLayers"/>, <paramref name="layers"/> gets one row per
    /// top-level layer: forward and backward ms per step and its share of the step, from one more rep with
    /// <see cref="Sequential.LayerTicks"/> on; the rest of the step (loss, update, batch assembly) is the row "(rest)".</summary>
    public static Dictionary<string, object?> Measure(string modelName, int batch, int threads, int reps, double repSeconds,
        bool profileLayers, out List<Dictionary<string, object?>> layers)
    {
        var (spec, net, trainer, data, step) = NewStep(modelName, batch);
        for (int i = 0; i < 5; i++) trainer.TrainStep(data, step);

        var sw = Stopwatch.StartNew();
        int calib = 0;
        while (sw.Elapsed.TotalSeconds < 0.3 * repSeconds) { trainer.TrainStep(data, step); calib++; }
        int iters = Math.Max(2, (int)(calib * repSeconds / sw.Elapsed.TotalSeconds));

        var rates = new List<double>();
        // Managed bytes of this thread: with one compute thread all of a step runs here, and the JIT's
        // background tiering (which GC.GetTotalAllocatedBytes would count) stays out of the figure.
        long allocBefore = GC.GetAllocatedBytesForCurrentThread();
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        double loss = 0;
        for (int rep = 0; rep < reps; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < iters; i++) loss = trainer.TrainStep(data, step);
            rates.Add(iters * (double)batch / Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        long alloc = GC.GetAllocatedBytesForCurrentThread() - allocBefore;
        double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
        layers = profileLayers ? ProfileLayers(spec.Name, batch, threads, net, () => trainer.TrainStep(data, step), iters) : [];
        double samples = (double)reps * iters * batch;
        rates.Sort();
        double median = Stats.Median(rates);
        return new Dictionary<string, object?>
        {
            ["model"] = spec.Name,
            ["batch"] = batch,
            ["threads"] = threads,
            ["params"] = net.ParameterCount,
            ["steps_per_rep"] = iters,
            ["samples_per_s"] = Math.Round(median, 1),
            ["min_samples_per_s"] = Math.Round(rates[0], 1),
            ["max_samples_per_s"] = Math.Round(rates[^1], 1),
            ["ms_per_step"] = Math.Round(1000.0 * batch / median, 3),
            // Samples per CPU-second of this process: robust on a loaded machine (wall time is not).
            ["cpu_samples_per_s"] = Math.Round(samples / cpu, 1),
            ["cpu_util"] = Math.Round(cpu / wall.Elapsed.TotalSeconds, 2),
            ["alloc_bytes_per_step"] = alloc / (reps * iters),
            ["peak_rss_bytes"] = PeakRss(),
            ["loss"] = Math.Round(loss, 4),
        };
    }

    private static List<Dictionary<string, object?>> ProfileLayers(string model, int batch, int threads, Sequential net, Action step, int iters)
    {
        var ticks = new long[2 * net.Layers.Count];
        net.LayerTicks = ticks;
        long t0 = Stopwatch.GetTimestamp();
        try { for (int i = 0; i < iters; i++) step(); }
        finally { net.LayerTicks = null; }
        long total = Stopwatch.GetTimestamp() - t0;
        double Ms(long t) => Math.Round(1000.0 * t / Stopwatch.Frequency / iters, 3);
        double Share(long t) => Math.Round(100.0 * t / total, 1);
        var rows = new List<Dictionary<string, object?>>();
        for (int i = 0; i < net.Layers.Count; i++)
        {
            long f = ticks[2 * i], b = ticks[2 * i + 1];
            rows.Add(new Dictionary<string, object?>
            {
                ["model"] = model, ["batch"] = batch, ["threads"] = threads, ["layer"] = net.Layers[i].Name, ["kind"] = net.Layers[i].ToString(),
                ["forward_ms"] = Ms(f), ["backward_ms"] = Ms(b), ["percent_of_step"] = Share(f + b),
            });
        }
        long rest = total - ticks.Sum();
        rows.Add(new Dictionary<string, object?>
        {
            ["model"] = model, ["batch"] = batch, ["threads"] = threads, ["layer"] = "(rest)", ["kind"] = "loss, update, batch assembly",
            ["forward_ms"] = Ms(rest), ["backward_ms"] = 0.0, ["percent_of_step"] = Share(rest),
        });
        return rows;
    }

    /// <summary>What one timed training step needs: the model, an SGD trainer over it, random data of one batch and
    /// the batch's sample indices (bench pair builds one per thread).</summary>
    internal static (ModelSpec Spec, Sequential Net, Trainer Trainer, Dataset Data, int[][] Step) NewStep(string modelName, int batch)
    {
        var spec = Presets.Resolve(modelName);
        var net = spec.Build(1);
        var data = RandomData(spec, batch, net.OutputShape[^1]);
        var trainer = new Trainer(net, spec.CreateLoss(), OptimizerFactory.Create("sgd", net.ParameterCount), _ => 0.01f,
            new TrainerOptions { BatchSize = batch, Seed = 1 });
        return (spec, net, trainer, data, [Enumerable.Range(0, batch).ToArray()]);
    }

    /// <summary>B samples of the model's input shape, uniform in [0,1) like scaled pixels, labels uniform over the classes.</summary>
    private static Dataset RandomData(ModelSpec spec, int batch, int classes)
    {
        var rng = new Random(42);
        int len = spec.Input.Aggregate(1, (a, b) => a * b);
        var x = new float[batch * len];
        for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble();
        var y = new int[batch];
        for (int i = 0; i < batch; i++) y[i] = rng.Next(classes);
        return new Dataset($"random({batch})", spec.Input, x, y, classes);
    }

    /// <summary>Peak resident set size of this process (VmHWM in /proc/self/status), or null where there is none.</summary>
    public static long? PeakRss()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
        }
        catch (IOException) { }
        return null;
    }
}
