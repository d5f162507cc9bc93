// The error every data source raises for bad input: it names the file (and line/column where it
// applies), the problem, and the fix, so a user sees one clear sentence instead of a stack trace.
namespace DistTrain.Data;

public sealed class DataException : Exception
{
    public DataException(string file, string problem, string fix, Exception? inner = null)
        : base(Compose(file, null, null, null, problem, fix), inner)
    {
        File = file; Problem = problem; Fix = fix;
    }

    /// <param name="columnNumber">1-based position of <paramref name="column"/> in the row, when known.</param>
    public DataException(string file, int line, string? column, string problem, string fix, Exception? inner = null, int? columnNumber = null)
        : base(Compose(file, line, column, columnNumber, problem, fix), inner)
    {
        File = file; Line = line; Column = column; ColumnNumber = columnNumber; Problem = problem; Fix = fix;
    }

    /// <summary>The file (or dataset spec) at fault.</summary>
    public string File { get; }
    /// <summary>1-based line for text sources, else null.</summary>
    public int? Line { get; }
    /// <summary>Column name for text sources, else null.</summary>
    public string? Column { get; }
    /// <summary>1-based column position for text sources, when known.</summary>
    public int? ColumnNumber { get; }
    public string Problem { get; }
    public string Fix { get; }

    static string Compose(string file, int? line, string? column, int? columnNumber, string problem, string fix)
    {
        var where = file;
        if (line is { } l) where += $":{l}";
        if (column is not null) where += columnNumber is { } n ? $" (column {n} '{column}')" : $" (column '{column}')";
        return $"{where}: {problem}. {fix}";
    }
}
