// Shared output for `disttrain bench ...`: a table for people, or one JSON object per line (--json).
using System.Text.Json;

namespace DistTrain.Cli.Bench;

public sealed class BenchOutput(bool json)
{
    private readonly List<Dictionary<string, object?>> _rows = [];

    /// <summary>Adds one measurement; printed at once as a JSON line, or kept for the table.</summary>
    public void Add(Dictionary<string, object?> row)
    {
        if (json) Console.WriteLine(JsonSerializer.Serialize(row));
        else _rows.Add(row);
    }

    public void Note(string line)
    {
        if (json) Console.Error.WriteLine(line); else Console.WriteLine(line);
    }

    /// <summary>Prints the table (text mode): columns in first-seen order.</summary>
    public void Flush()
    {
        if (json || _rows.Count == 0) return;
        var cols = _rows.SelectMany(r => r.Keys).Distinct().ToList();
        string Cell(object? v) => v switch { double d => d.ToString(d >= 100 ? "F1" : "F3"), float f => f.ToString("F3"), null => "", _ => v.ToString()! };
        var widths = cols.Select(c => Math.Max(c.Length, _rows.Max(r => Cell(r.GetValueOrDefault(c)).Length))).ToList();
        Console.WriteLine(string.Join("  ", cols.Select((c, i) => c.PadLeft(widths[i]))));
        foreach (var r in _rows)
            Console.WriteLine(string.Join("  ", cols.Select((c, i) => Cell(r.GetValueOrDefault(c)).PadLeft(widths[i]))));
        _rows.Clear();
    }
}
