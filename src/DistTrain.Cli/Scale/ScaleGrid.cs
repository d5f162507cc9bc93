// The experiment grid of `disttrain scale`: comma-separated lists of worker processes, parameter-server processes,
// modes, micro-batches and compressions, multiplied out into runs (ScalePoint), each with a folder name that says
// what it is. Pure code: parsing and validation with errors that name the option and the fix.
using System.Globalization;

namespace DistTrain.Cli.Scale;

/// <summary>One run of the grid. PsNodes 0: the coordinator's process holds the shards.</summary>
public sealed record ScalePoint(int Workers, int PsNodes, string Mode, int MicroBatch, string Compression)
{
    /// <summary>The run's folder under the experiment's --out, e.g. w8-ps2-sync-m32-none.</summary>
    public string Name => $"w{Workers}-ps{PsNodes}-{Mode}-m{MicroBatch}-{Compression}";

    /// <summary>Runs that differ only in the worker count form a speed-up curve.</summary>
    public string Series => $"ps{PsNodes} {Mode} m{MicroBatch} {Compression}";

    /// <summary>Hosts (processes) that hold the shards: the ps processes, or the coordinator's.</summary>
    public int ShardHosts => Math.Max(1, PsNodes);
}

public static class ScaleGrid
{
    public static readonly string[] Modes = ["sync", "async", "local-sgd"];
    public static readonly string[] Compressions = ["none", "bf16", "fp16", "int8", "topk"];

    /// <summary>Every combination, worker counts varying fastest (a series' runs follow each other).</summary>
    public static IReadOnlyList<ScalePoint> Points(IReadOnlyList<int> workers, IReadOnlyList<int> psNodes, IReadOnlyList<string> modes,
        IReadOnlyList<int> microBatches, IReadOnlyList<string> compressions)
    {
        var points = new List<ScalePoint>();
        foreach (var c in compressions)
        foreach (var m in modes)
        foreach (var mb in microBatches)
        foreach (var p in psNodes)
        foreach (var w in workers)
            points.Add(new ScalePoint(w, p, m, mb, c));
        return points;
    }

    /// <summary>"1,2,4" (or "1 2 4") as distinct integers ≥ <paramref name="min"/>, in the order given.</summary>
    public static IReadOnlyList<int> Ints(string text, string option, int min)
    {
        var parts = Split(text);
        if (parts.Length == 0) throw new ArgumentException($"{option} is empty; give a comma-separated list such as {option} 1,2,4.");
        var values = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min)
                throw new ArgumentException($"{option}: '{p}' is not a whole number ≥ {min}; give a comma-separated list such as {option} {min},{min + 1}.");
            if (!values.Contains(v)) values.Add(v);
        }
        return values;
    }

    /// <summary>A list of names, each one of <paramref name="allowed"/>.</summary>
    public static IReadOnlyList<string> Names(string text, string option, IReadOnlyList<string> allowed)
    {
        var parts = Split(text).Select(p => p.ToLowerInvariant()).Distinct().ToArray();
        if (parts.Length == 0) throw new ArgumentException($"{option} is empty; give one or more of {string.Join(", ", allowed)}.");
        foreach (var p in parts)
            if (!allowed.Contains(p)) throw new ArgumentException($"{option}: '{p}' is not one of {string.Join(", ", allowed)}.");
        return parts;
    }

    private static string[] Split(string text) =>
        text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>"50ms", "0.05s", "500us" (tc's units) as a one-way delay, 0..10 s.</summary>
    public static TimeSpan ParseLatency(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        (string unit, double seconds)[] units = [("ms", 1e-3), ("us", 1e-6), ("s", 1)];
        foreach (var (unit, seconds) in units)
            if (t.EndsWith(unit, StringComparison.Ordinal)
                && double.TryParse(t[..^unit.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0 && v * seconds <= 10)
                return TimeSpan.FromSeconds(v * seconds);
        throw new ArgumentException($"--latency '{text}' is not a delay of at most 10 s; give it as tc does, e.g. 50ms, 0.05s or 500us.");
    }

    /// <summary>"1gbit", "100mbit", "500kbit", "2.5gbit" (tc's units, bits per second) as bytes per second.</summary>
    public static double ParseRate(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        (string unit, double bits)[] units = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1)];
        foreach (var (unit, bits) in units)
            if (t.EndsWith(unit, StringComparison.Ordinal)
                && double.TryParse(t[..^unit.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0 && double.IsFinite(v))
                return v * bits / 8;
        throw new ArgumentException($"--bandwidth '{text}' is not a rate; give it as tc does, e.g. 1gbit, 100mbit or 500kbit.");
    }
}
