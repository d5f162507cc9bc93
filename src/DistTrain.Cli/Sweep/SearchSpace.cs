// The ranges of a hyper-parameter sweep, parsed from `NAME=RANGE` words (`lr=log:1e-4..1e-2`, `lr=1e-4..1e-2`,
// `batch=64,128,256`, `optimizer=adam`), each mapped onto a `disttrain train` option (SweepOptions).
// Every strategy works in the unit cube [0,1)^d; Decode turns a point into the exact option values a trial runs with.
using System.Globalization;

namespace DistTrain.Cli.Sweep;

public enum RangeKind { Linear, Log, Choice }

/// <summary>One swept parameter. Numeric values are rounded to 4 significant digits (integers for integer options),
/// so what the report shows is exactly what the trial was given.</summary>
public sealed record ParamRange(string Name, string Option, RangeKind Kind, double Low, double High, IReadOnlyList<string> Choices,
    int? GridPoints, bool Integer)
{
    public const string Forms =
        "log:LOW..HIGH (log-uniform, LOW > 0), LOW..HIGH (uniform) or V1,V2,... (a list; one value fixes it); " +
        "a range may end in :N, the points a grid search takes (lr=log:1e-4..1e-2:5)";

    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Parses <c>NAME=RANGE</c>; <paramref name="catalog"/> says which names exist and their option types.</summary>
    public static ParamRange Parse(string text, TrainOptionCatalog catalog)
    {
        int eq = text.IndexOf('=');
        if (eq <= 0 || eq == text.Length - 1)
            throw new ArgumentException($"'{text}' is not NAME=RANGE; write e.g. lr=log:1e-4..1e-2, lr=1e-4..1e-2 or batch=64,128,256 (RANGE: {Forms}).");
        var name = text[..eq].Trim();
        var spec = text[(eq + 1)..].Trim();
        var option = catalog.Find(name);
        var given = spec;
        string Bad(string why) => $"{name}={given}: {why}; expected {Forms}.";

        bool log = spec.StartsWith("log:", StringComparison.OrdinalIgnoreCase);
        if (log) spec = spec[4..];
        int dots = spec.IndexOf("..", StringComparison.Ordinal);
        if (dots < 0)
        {
            if (log) throw new ArgumentException(Bad("log: needs a range LOW..HIGH"));
            var choices = spec.Split(',', StringSplitOptions.TrimEntries);
            if (choices.Any(c => c.Length == 0)) throw new ArgumentException(Bad("an empty value in the list"));
            if (choices.Distinct(StringComparer.Ordinal).Count() != choices.Length) throw new ArgumentException(Bad("a value is listed twice"));
            if (option.Numeric)
                foreach (var c in choices)
                    if (!TryNumber(c, out var v) || (option.Integer && v != Math.Round(v)))
                        throw new ArgumentException(Bad($"'{c}' is not {(option.Integer ? "an integer" : "a number")}, which {option.Flag} takes"));
            return new ParamRange(name, option.Flag, RangeKind.Choice, double.NaN, double.NaN, choices, null, option.Integer);
        }
        if (!option.Numeric) throw new ArgumentException(Bad($"{option.Flag} takes names, not numbers: list them, e.g. {name}=A,B"));
        var rest = spec[(dots + 2)..];
        int? points = null;
        int colon = rest.IndexOf(':');
        if (colon >= 0)
        {
            if (!int.TryParse(rest[(colon + 1)..], NumberStyles.None, Inv, out var n) || n < 1) throw new ArgumentException(Bad($"':{rest[(colon + 1)..]}' is not a positive count of grid points"));
            points = n;
            rest = rest[..colon];
        }
        if (!TryNumber(spec[..dots], out var lo)) throw new ArgumentException(Bad($"'{spec[..dots]}' is not a number"));
        if (!TryNumber(rest, out var hi)) throw new ArgumentException(Bad($"'{rest}' is not a number"));
        if (!(lo < hi)) throw new ArgumentException(Bad($"LOW ({Fmt(lo)}) must be below HIGH ({Fmt(hi)})"));
        if (log && lo <= 0) throw new ArgumentException(Bad($"a log range needs LOW > 0, not {Fmt(lo)}"));
        if (option.Integer && (lo != Math.Round(lo) || hi != Math.Round(hi))) throw new ArgumentException(Bad($"{option.Flag} takes integers"));
        return new ParamRange(name, option.Flag, log ? RangeKind.Log : RangeKind.Linear, lo, hi, [], points, option.Integer);
    }

    static bool TryNumber(string s, out double v) =>
        double.TryParse(s, NumberStyles.Float, Inv, out v) && double.IsFinite(v);

    static string Fmt(double v) => v.ToString("R", Inv);

    /// <summary>The value for unit coordinate u in [0,1): uniform over the range (in log space for Log), uniform over the list.</summary>
    public string Decode(double u)
    {
        u = Math.Clamp(u, 0, 1);
        return Kind switch
        {
            RangeKind.Choice => Choices[Math.Min(Choices.Count - 1, (int)(u * Choices.Count))],
            RangeKind.Log => Number(Math.Exp(Math.Log(Low) + u * (Math.Log(High) - Math.Log(Low)))),
            _ => Number(Low + u * (High - Low)),
        };
    }

    /// <summary>The unit coordinate of a value (the centre of its cell for a list): what a model of the objective sees.</summary>
    public double Encode(string value)
    {
        if (Kind == RangeKind.Choice) return (IndexOf(value) + 0.5) / Choices.Count;
        double v = double.Parse(value, Inv);
        return Kind == RangeKind.Log
            ? (Math.Log(v) - Math.Log(Low)) / (Math.Log(High) - Math.Log(Low))
            : (v - Low) / (High - Low);
    }

    public int IndexOf(string value)
    {
        for (int i = 0; i < Choices.Count; i++) if (Choices[i] == value) return i;
        throw new ArgumentException($"'{value}' is not one of {Name}'s values ({string.Join(", ", Choices)}).");
    }

    /// <summary>The values a grid search takes: the list, or N points from LOW to HIGH inclusive (evenly in log space for Log).</summary>
    public IReadOnlyList<string> GridValues(int defaultPoints)
    {
        if (Kind == RangeKind.Choice) return Choices;
        int n = GridPoints ?? defaultPoints;
        var values = new List<string>();
        for (int i = 0; i < n; i++)
        {
            double t = n == 1 ? 0.5 : (double)i / (n - 1);
            var v = Kind == RangeKind.Log ? Math.Exp(Math.Log(Low) + t * (Math.Log(High) - Math.Log(Low))) : Low + t * (High - Low);
            var s = Number(v);
            if (!values.Contains(s)) values.Add(s); // an integer range narrower than N points
        }
        return values;
    }

    /// <summary>A value as the option is given it: an integer, or 4 significant digits.</summary>
    public string Number(double v) => Integer
        ? Math.Round(v, MidpointRounding.AwayFromZero).ToString("R", Inv)
        : double.Parse(v.ToString("G4", Inv), Inv).ToString("R", Inv);

    /// <summary>A value as a number on a plot's axis (the list index for a list of names).</summary>
    public double AxisValue(string value) =>
        Kind == RangeKind.Choice && !Choices.All(c => double.TryParse(c, NumberStyles.Float, Inv, out _)) ? IndexOf(value) : double.Parse(value, Inv);

    public override string ToString() => Kind switch
    {
        RangeKind.Choice => $"{Name}={string.Join(",", Choices)}",
        RangeKind.Log => $"{Name}=log:{Fmt(Low)}..{Fmt(High)}",
        _ => $"{Name}={Fmt(Low)}..{Fmt(High)}",
    };
}

/// <summary>The swept parameters, in the order given. A point is one value per parameter.</summary>
public sealed class SearchSpace
{
    public SearchSpace(IReadOnlyList<ParamRange> ranges)
    {
        if (ranges.Count == 0) throw new ArgumentException($"Give at least one parameter to sweep, e.g. lr=log:1e-4..1e-2 (RANGE: {ParamRange.Forms}).");
        var twice = ranges.GroupBy(r => r.Option).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new ArgumentException($"{string.Join(" and ", twice.Select(r => r.Name))} both set {twice.Key}; give each option once.");
        Ranges = ranges;
    }

    public static SearchSpace Parse(IEnumerable<string> words, TrainOptionCatalog catalog) =>
        new(words.Select(w => ParamRange.Parse(w, catalog)).ToList());

    public IReadOnlyList<ParamRange> Ranges { get; }
    public int Dimensions => Ranges.Count;

    /// <summary>The parameters that vary (a one-value list is fixed).</summary>
    public IEnumerable<ParamRange> Varied => Ranges.Where(r => r.Kind != RangeKind.Choice || r.Choices.Count > 1);

    public TrialPoint Decode(ReadOnlySpan<double> unit)
    {
        var values = new string[Ranges.Count];
        for (int i = 0; i < values.Length; i++) values[i] = Ranges[i].Decode(unit[i]);
        return new TrialPoint(values);
    }

    public double[] Encode(TrialPoint p)
    {
        var u = new double[Ranges.Count];
        for (int i = 0; i < u.Length; i++) u[i] = Ranges[i].Encode(p.Values[i]);
        return u;
    }

    /// <summary>Every combination of the grid values, the first parameter varying slowest.</summary>
    public IReadOnlyList<TrialPoint> Grid(int defaultPoints)
    {
        var axes = Ranges.Select(r => r.GridValues(defaultPoints)).ToList();
        long total = axes.Aggregate(1L, (a, x) => a * x.Count);
        if (total > 100_000) throw new ArgumentException($"The grid has {total:N0} points; give fewer values or :N points per range, or use --strategy random.");
        var points = new List<TrialPoint>((int)total);
        var idx = new int[axes.Count];
        for (long k = 0; k < total; k++)
        {
            points.Add(new TrialPoint(axes.Select((a, i) => a[idx[i]]).ToArray()));
            for (int i = axes.Count - 1; i >= 0; i--)
            {
                if (++idx[i] < axes[i].Count) break;
                idx[i] = 0;
            }
        }
        return points;
    }

    /// <summary>"lr=0.001 batch=128".</summary>
    public string Describe(TrialPoint p) => string.Join(" ", Ranges.Select((r, i) => $"{r.Name}={p.Values[i]}"));
}

/// <summary>One configuration: a value per parameter of the space, as the train option is given it.</summary>
public sealed record TrialPoint(IReadOnlyList<string> Values)
{
    public bool Equals(TrialPoint? other) => other is not null && Values.SequenceEqual(other.Values, StringComparer.Ordinal);
    public override int GetHashCode() => Values.Aggregate(17, (h, v) => h * 31 + StringComparer.Ordinal.GetHashCode(v));
    public override string ToString() => string.Join(" ", Values);
}
