// Reads a run's metrics.jsonl (MetricsLog: "step" and "epoch" records) into per-epoch and per-step series
// for plotting. A resumed run appends to the file: the last record of an epoch wins. Where an epoch
// record lacks a training loss or accuracy, the mean over that epoch's steps stands in.
using System.Text.Json;

namespace DistTrain.Cli.Plotting;

/// <summary>One epoch: NaN where the run did not measure a value (no test set, a regression model).</summary>
public sealed record EpochPoint(int Epoch, double TrainLoss, double TestLoss, double TrainAccuracy, double TestAccuracy);

/// <summary>One optimizer step: its loss and time, and where a cluster run logged them, its mean compute,
/// communication and wait milliseconds per micro-batch (NaN otherwise).</summary>
public sealed record StepPoint(long Step, int Epoch, double Loss, double Seconds, double ComputeMs, double CommunicationMs, double WaitMs,
    double TrainAccuracy = double.NaN);

public sealed class RunMetrics
{
    RunMetrics(string name, string path, IReadOnlyList<EpochPoint> epochs, IReadOnlyList<StepPoint> steps)
    {
        Name = name; Path = path; Epochs = epochs; Steps = steps;
    }

    /// <summary>The run's name in legends: its folder's name.</summary>
    public string Name { get; }
    /// <summary>The metrics.jsonl file read.</summary>
    public string Path { get; }
    public IReadOnlyList<EpochPoint> Epochs { get; }
    public IReadOnlyList<StepPoint> Steps { get; }

    /// <summary>Reads RUN/metrics.jsonl, or the given .jsonl file. Errors name the file and line.</summary>
    public static RunMetrics Load(string runOrFile)
    {
        var file = Directory.Exists(runOrFile) ? System.IO.Path.Combine(runOrFile, "metrics.jsonl") : runOrFile;
        if (!File.Exists(file))
            throw new ArgumentException(Directory.Exists(runOrFile)
                ? $"Run folder {runOrFile} has no metrics.jsonl; give a folder written by `disttrain train --out DIR`."
                : $"{runOrFile} is neither a run folder nor a metrics.jsonl file.");
        var name = System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file)))!;
        using var reader = new StreamReader(file);
        return Parse(reader, file, name);
    }

    public static RunMetrics Parse(TextReader reader, string source, string name)
    {
        var epochs = new SortedDictionary<int, EpochPoint>();
        var steps = new SortedDictionary<long, StepPoint>();
        int lineNo = 0;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNo++;
            if (line.Length == 0) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e)
            {
                // The last line of a run that is still writing may be cut short; anything else is a bad file.
                if (reader.Peek() < 0) break;
                throw new FormatException($"{source}:{lineNo}: not a JSON object ({e.Message}).");
            }
            using (doc)
            {
                var r = doc.RootElement;
                if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("kind", out var kind)) continue;
                switch (kind.GetString())
                {
                    case "epoch":
                        int e = (int)Num(r, "epoch");
                        epochs[e] = new EpochPoint(e, Num(r, "train_loss"), Num(r, "test_loss"), Num(r, "train_accuracy"), Num(r, "test_accuracy"));
                        break;
                    case "step":
                        long s = (long)Num(r, "step");
                        steps[s] = new StepPoint(s, (int)Num(r, "epoch"), Num(r, "loss"), Num(r, "step_s"),
                            Num(r, "compute_ms"), Num(r, "communication_ms"), Num(r, "wait_ms"), Num(r, "train_accuracy"));
                        break;
                }
            }
        }
        var stepList = steps.Values.ToList();
        var epochList = epochs.Values.Select(p => p with
        {
            TrainLoss = double.IsNaN(p.TrainLoss) ? MeanOfSteps(stepList, p.Epoch, s => s.Loss) : p.TrainLoss,
            TrainAccuracy = double.IsNaN(p.TrainAccuracy) ? MeanOfSteps(stepList, p.Epoch, s => s.TrainAccuracy) : p.TrainAccuracy,
        }).ToList();
        return new RunMetrics(name, source, epochList, stepList);
    }

    static double MeanOfSteps(List<StepPoint> steps, int epoch, Func<StepPoint, double> value)
    {
        double sum = 0; int n = 0;
        foreach (var s in steps)
            if (s.Epoch == epoch && double.IsFinite(value(s))) { sum += value(s); n++; }
        return n == 0 ? double.NaN : sum / n;
    }

    static double Num(JsonElement r, string field) =>
        r.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;

    public override string ToString() => $"RunMetrics({Name}: {Epochs.Count} epochs, {Steps.Count} steps)";
}
