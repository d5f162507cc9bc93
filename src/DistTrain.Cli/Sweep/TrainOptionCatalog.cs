// Which `disttrain train` options a sweep may set, read from the train command itself (so a new train option is
// sweepable without touching this file), with their value types and a few short names (lr, batch, wd, clip).
// Options the sweep controls itself (output folder, budget, threads, cluster wiring) are refused.
using System.CommandLine;

namespace DistTrain.Cli.Sweep;

/// <summary>A train option: its flag and whether it takes a number (an integer).</summary>
public sealed record TrainOption(string Flag, bool Numeric, bool Integer);

public sealed class TrainOptionCatalog
{
    /// <summary>Short names users write in sweeps.</summary>
    public static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["lr"] = "--lr", ["batch"] = "--batch-size", ["wd"] = "--weight-decay", ["clip"] = "--clip-norm",
    };

    /// <summary>Set by the sweep for every trial, or meaningless for one: never a swept parameter.</summary>
    static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "--model", "--dataset", "--out", "--epochs", "--max-steps", "--threads", "--resume", "--checkpoint-every", "--init", "--workers", "--ps-shards",
        "--ps-local", "--cluster-port", "--wait-workers", "--hostname", "--config", "--help", "--mode", "--staleness", "--local-steps",
    };

    readonly Dictionary<string, TrainOption> _options = new(StringComparer.OrdinalIgnoreCase);

    public TrainOptionCatalog(IEnumerable<Option> trainOptions)
    {
        foreach (var o in trainOptions)
        {
            if (Reserved.Contains(o.Name) || !o.Name.StartsWith("--", StringComparison.Ordinal)) continue;
            var t = Nullable.GetUnderlyingType(o.ValueType) ?? o.ValueType;
            if (t == typeof(bool)) continue;
            bool integer = t == typeof(int) || t == typeof(long);
            bool numeric = integer || t == typeof(float) || t == typeof(double);
            _options[o.Name[2..]] = new TrainOption(o.Name, numeric, integer);
        }
    }

    /// <summary>The options of `disttrain train` as this build defines them.</summary>
    public static TrainOptionCatalog FromTrainCommand() => new(new Commands.TrainCommand().Create().Options);

    /// <summary>The names a sweep accepts, short names first.</summary>
    public IEnumerable<string> Names => Aliases.Keys.Where(a => _options.ContainsKey(Aliases[a][2..])).Concat(_options.Keys.Order(StringComparer.Ordinal));

    public TrainOption Find(string name)
    {
        var key = Aliases.TryGetValue(name, out var flag) ? flag[2..] : name.TrimStart('-');
        if (_options.TryGetValue(key, out var o)) return o;
        var why = Reserved.Contains("--" + key)
            ? $"{name} is set by the sweep itself (budget, output folder, threads) and cannot be swept"
            : $"'{name}' is not a `disttrain train` option a sweep can set";
        throw new ArgumentException($"{why}; sweepable: {string.Join(", ", Names)}.");
    }
}
