// The line-splitting CSV parser DistTrain used before Sep (string.Split + float.TryParse), kept only as this benchmark's baseline.
// Reads a numeric CSV with a header row into a Dataset of sample shape (F): one column (named by
// the user, default "label") holds non-negative integer labels, every other column a float feature.
using System.Globalization;

namespace OldCsv;
using DistTrain.Data;

public static class OldCsvReader
{
    /// <summary>Loads <paramref name="path"/>. Classes = max label + 1 unless <paramref name="classes"/>
    /// is given, in which case a label ≥ classes is an error.</summary>
    public static Dataset Load(string path, string labelColumn = "label", int? classes = null, string? name = null)
    {
        if (!File.Exists(path))
            throw new DataException(path, $"file not found (looked for {Path.GetFullPath(path)})", "Give the path of an existing CSV file: csv:FILE[:label=COLUMN]");
        using var reader = new StreamReader(path, detectEncodingFromByteOrderMarks: true);
        return Parse(reader, path, labelColumn, classes, name ?? Path.GetFileNameWithoutExtension(path));
    }

    /// <summary>Parses CSV text; <paramref name="source"/> names it in errors.</summary>
    public static Dataset Parse(TextReader reader, string source, string labelColumn = "label", int? classes = null, string? name = null)
    {
        int lineNo = 0;
        string? line;
        do { line = reader.ReadLine(); lineNo++; } while (line is not null && line.Trim().Length == 0);
        if (line is null)
            throw new DataException(source, "is empty: no header row", "Give a CSV whose first line names the columns, one of them the label");
        var header = Split(line);
        for (int c = 0; c < header.Length; c++)
        {
            if (header[c].Length == 0)
                throw new DataException(source, lineNo, null, $"header column {c + 1} has no name", "Name every column in the header row");
            for (int d = 0; d < c; d++)
                if (header[d] == header[c])
                    throw new DataException(source, lineNo, header[c], "this column name appears twice in the header", "Give each column a distinct name");
        }
        int labelAt = Array.IndexOf(header, labelColumn);
        if (labelAt < 0)
            throw new DataException(source, lineNo, labelColumn, $"no such column; the header has {string.Join(", ", header)}",
                "Name the label column with csv:FILE:label=COLUMN");
        int featureCount = header.Length - 1;
        if (featureCount == 0)
            throw new DataException(source, lineNo, null, "the label is the only column", "Add at least one feature column");

        var features = new List<float>();
        var labels = new List<int>();
        int maxLabel = -1;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNo++;
            if (line.Trim().Length == 0) continue;
            var cells = Split(line);
            if (cells.Length != header.Length)
                throw new DataException(source, lineNo, null, $"has {cells.Length} fields where the header has {header.Length}",
                    "Give every row one value per header column");
            for (int c = 0; c < cells.Length; c++)
            {
                if (c == labelAt)
                {
                    int label = ParseLabel(cells[c], source, lineNo, header[c]);
                    if (classes is { } k && label >= k)
                        throw new DataException(source, lineNo, header[c], $"label {label} is out of range for {k} classes",
                            $"Use labels 0..{k - 1} or a class count above {label}");
                    labels.Add(label);
                    maxLabel = Math.Max(maxLabel, label);
                }
                else if (float.TryParse(cells[c], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && float.IsFinite(v))
                    features.Add(v);
                else
                    throw new DataException(source, lineNo, header[c], $"'{cells[c]}' is not a finite number",
                        "Give numeric features only (encode categories as numbers first)");
            }
        }
        if (labels.Count == 0)
            throw new DataException(source, lineNo, null, "has a header but no data rows", "Add at least one data row");
        return new Dataset(name ?? source, [featureCount], features.ToArray(), labels.ToArray(), classes ?? maxLabel + 1);
    }

    static int ParseLabel(string cell, string source, int line, string column)
    {
        if (int.TryParse(cell, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) && i >= 0) return i;
        // Accept "3.0" as written by tools that store every column as float.
        if (double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d >= 0 && d <= int.MaxValue && d == Math.Floor(d))
            return (int)d;
        throw new DataException(source, line, column, $"label '{cell}' is not a non-negative integer",
            "Labels must be class indices 0, 1, 2, ...");
    }

    /// <summary>Splits one CSV line on commas, trimming spaces and one pair of surrounding quotes.</summary>
    static string[] Split(string line)
    {
        var parts = line.Split(',');
        for (int i = 0; i < parts.Length; i++)
        {
            var p = parts[i].Trim();
            if (p.Length >= 2 && p[0] == '"' && p[^1] == '"') p = p[1..^1].Trim();
            parts[i] = p;
        }
        return parts;
    }
}
