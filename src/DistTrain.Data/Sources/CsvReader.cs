// Reads a numeric CSV with a header row (parsed by Sep: SIMD field splitting, csFastFloat numbers) into a
// Dataset of sample shape (F): one column (named by the user, default "label") holds non-negative integer
// labels, every other column a float feature. Every error names the file, the line and the column.
using System.Globalization;
using nietras.SeparatedValues;

namespace DistTrain.Data.Sources;

/// <summary>A CSV's feature columns (in header order, the label column left out) and, when present, its labels.</summary>
public sealed record CsvTable(string Source, string[] FeatureNames, float[] Features, int[]? Labels)
{
    public int Rows => Features.Length / FeatureNames.Length;
}

public static class CsvReader
{
    /// <summary>Loads <paramref name="path"/>. Classes = max label + 1 unless <paramref name="classes"/>
    /// is given, in which case a label ≥ classes is an error.</summary>
    public static Dataset Load(string path, string labelColumn = "label", int? classes = null, string? name = null)
    {
        RequireFile(path);
        using var reader = new StreamReader(path, detectEncodingFromByteOrderMarks: true);
        return Parse(reader, path, labelColumn, classes, name ?? Path.GetFileNameWithoutExtension(path));
    }

    /// <summary>Parses CSV text; <paramref name="source"/> names it in errors.</summary>
    public static Dataset Parse(TextReader reader, string source, string labelColumn = "label", int? classes = null, string? name = null)
    {
        var t = ReadTable(reader, source, labelColumn, labelRequired: true, classes);
        int maxLabel = -1;
        foreach (var l in t.Labels!) maxLabel = Math.Max(maxLabel, l);
        return new Dataset(name ?? source, [t.FeatureNames.Length], t.Features, t.Labels!, classes ?? maxLabel + 1);
    }

    /// <summary>Reads a CSV whose label column may be absent (samples to predict): the features, and the labels if the column is there.</summary>
    public static CsvTable ReadTable(string path, string labelColumn = "label")
    {
        RequireFile(path);
        using var reader = new StreamReader(path, detectEncodingFromByteOrderMarks: true);
        return ReadTable(reader, path, labelColumn, labelRequired: false, classes: null);
    }

    static CsvTable ReadTable(TextReader text, string source, string labelColumn, bool labelRequired, int? classes)
    {
        // Quotes are unescaped and spaces trimmed; the header row is read here (Sep's own header refuses duplicate
        // names with a bare exception) and the column count is checked per line, so every error can name the place.
        using var reader = Sep.New(',').Reader(o => o with { HasHeader = false, Unescape = true, Trim = SepTrim.All, DisableColCountCheck = true, CultureInfo = CultureInfo.InvariantCulture })
            .From(text);
        string[]? header = null;
        int headerLine = 0;
        while (header is null && reader.MoveNext())
        {
            var row = reader.Current;
            headerLine++; // counted here: Sep's LineNumberFrom said 2 for a header on line 1
            if (row.ColCount == 1 && row[0].Span.Trim().Length == 0) continue; // blank lines before the header
            header = new string[row.ColCount];
            for (int c = 0; c < header.Length; c++) header[c] = row[c].ToString().Trim();
        }
        if (header is null)
            throw new DataException(source, "is empty: no header row", "Give a CSV whose first line names the columns, one of them the label");
        for (int c = 0; c < header.Length; c++)
        {
            if (header[c].Length == 0)
                throw new DataException(source, headerLine, null, $"header column {c + 1} has no name", "Name every column in the header row");
            for (int d = 0; d < c; d++)
                if (header[d] == header[c])
                    throw new DataException(source, headerLine, header[c], "this column name appears twice in the header", "Give each column a distinct name", columnNumber: c + 1);
        }
        int labelAt = Array.IndexOf(header, labelColumn);
        if (labelAt < 0 && labelRequired)
            throw new DataException(source, headerLine, labelColumn, $"no such column; the header has {string.Join(", ", header)}",
                "Name the label column with csv:FILE:label=COLUMN");
        var featureNames = header.Where((_, c) => c != labelAt).ToArray();
        if (featureNames.Length == 0)
            throw new DataException(source, headerLine, null, "the label is the only column", "Add at least one feature column");

        var features = new List<float>();
        var labels = labelAt >= 0 ? new List<int>() : null;
        int lastLine = headerLine;
        foreach (var row in reader)
        {
            int line = row.LineNumberFrom;
            lastLine = row.LineNumberToExcl - 1;
            if (row.ColCount == 1 && row[0].Span.Trim().Length == 0) continue; // a blank line
            if (row.ColCount != header.Length)
                throw new DataException(source, line, null, $"has {row.ColCount} fields where the header has {header.Length}",
                    "Give every row one value per header column");
            for (int c = 0; c < header.Length; c++)
            {
                var cell = row[c].Span;
                if (c == labelAt)
                {
                    int label = ParseLabel(cell, source, line, header[c], c + 1);
                    if (classes is { } k && label >= k)
                        throw new DataException(source, line, header[c], $"label {label} is out of range for {k} classes",
                            $"Use labels 0..{k - 1} or a class count above {label}", columnNumber: c + 1);
                    labels!.Add(label);
                }
                else if (row[c].TryParse<float>() is { } v && float.IsFinite(v))
                    features.Add(v);
                else
                    throw new DataException(source, line, header[c], $"'{cell}' is not a finite number",
                        "Give numeric features only (encode categories as numbers first)", columnNumber: c + 1);
            }
        }
        if (features.Count == 0)
            throw new DataException(source, lastLine, null, "has a header but no data rows", "Add at least one data row");
        return new CsvTable(source, featureNames, features.ToArray(), labels?.ToArray());
    }

    static void RequireFile(string path)
    {
        if (!File.Exists(path))
            throw new DataException(path, $"file not found (looked for {Path.GetFullPath(path)})", "Give the path of an existing CSV file: csv:FILE[:label=COLUMN]");
    }

    static int ParseLabel(ReadOnlySpan<char> cell, string source, int line, string column, int columnNumber)
    {
        if (int.TryParse(cell, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) && i >= 0) return i;
        // Accept "3.0" as written by tools that store every column as float.
        if (double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d >= 0 && d <= int.MaxValue && d == Math.Floor(d))
            return (int)d;
        throw new DataException(source, line, column, $"label '{cell}' is not a non-negative integer",
            "Labels must be class indices 0, 1, 2, ...", columnNumber: columnNumber);
    }
}
