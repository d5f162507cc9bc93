// Counts of (true class, predicted class) over a labelled set, with the figures read off it: overall
// accuracy and per-class accuracy (recall: the fraction of class c's samples predicted as c).
using System.Text.Json;

namespace DistTrain.Nn.Evaluation;

public sealed class ConfusionMatrix
{
    private readonly long[] _counts; // row-major (K,K): [true, predicted]

    public ConfusionMatrix(int classes)
    {
        if (classes < 1) throw new ArgumentException($"A confusion matrix needs at least one class, not {classes}.", nameof(classes));
        Classes = classes;
        _counts = new long[classes * classes];
    }

    public int Classes { get; }

    /// <summary>Samples whose true class is <paramref name="actual"/> and that were predicted as <paramref name="predicted"/>.</summary>
    public long this[int actual, int predicted] => _counts[actual * Classes + predicted];

    public long Total { get; private set; }

    public void Add(int actual, int predicted)
    {
        if ((uint)actual >= (uint)Classes || (uint)predicted >= (uint)Classes)
            throw new ArgumentException($"Class pair ({actual}, {predicted}) is outside 0..{Classes - 1}.");
        _counts[actual * Classes + predicted]++;
        Total++;
    }

    public void AddRange(ReadOnlySpan<int> actual, ReadOnlySpan<int> predicted)
    {
        if (actual.Length != predicted.Length) throw new ArgumentException($"{actual.Length} labels but {predicted.Length} predictions.");
        for (int i = 0; i < actual.Length; i++) Add(actual[i], predicted[i]);
    }

    /// <summary>Samples of class <paramref name="c"/> (its row sum).</summary>
    public long Support(int c)
    {
        long s = 0;
        for (int p = 0; p < Classes; p++) s += this[c, p];
        return s;
    }

    /// <summary>Correct predictions / all samples; NaN when empty.</summary>
    public double Accuracy
    {
        get
        {
            long correct = 0;
            for (int c = 0; c < Classes; c++) correct += this[c, c];
            return Total == 0 ? double.NaN : (double)correct / Total;
        }
    }

    /// <summary>Per class: the fraction of its samples predicted correctly (NaN for a class with no samples).</summary>
    public double[] PerClassAccuracy()
    {
        var acc = new double[Classes];
        for (int c = 0; c < Classes; c++)
        {
            long n = Support(c);
            acc[c] = n == 0 ? double.NaN : (double)this[c, c] / n;
        }
        return acc;
    }

    /// <summary>Rows as arrays (JSON-friendly): rows[true][predicted].</summary>
    public long[][] Rows()
    {
        var rows = new long[Classes][];
        for (int c = 0; c < Classes; c++) rows[c] = _counts.AsSpan(c * Classes, Classes).ToArray();
        return rows;
    }

    /// <summary>Rebuilds a matrix from <see cref="Rows"/> (e.g. read back from `eval --json`).</summary>
    public static ConfusionMatrix FromRows(IReadOnlyList<IReadOnlyList<long>> rows)
    {
        var m = new ConfusionMatrix(rows.Count);
        for (int a = 0; a < rows.Count; a++)
        {
            if (rows[a].Count != rows.Count) throw new ArgumentException($"Confusion matrix row {a} has {rows[a].Count} entries, not {rows.Count}.");
            for (int p = 0; p < rows.Count; p++)
            {
                if (rows[a][p] < 0) throw new ArgumentException($"Confusion matrix entry ({a},{p}) is negative.");
                m._counts[a * m.Classes + p] = rows[a][p];
                m.Total += rows[a][p];
            }
        }
        return m;
    }

    /// <summary>Reads the "confusion_matrix" array of a JSON object such as `disttrain eval --json` prints.</summary>
    public static ConfusionMatrix FromJson(JsonElement array) =>
        FromRows(array.EnumerateArray().Select(r => (IReadOnlyList<long>)r.EnumerateArray().Select(v => v.GetInt64()).ToList()).ToList());

    public override string ToString() => $"ConfusionMatrix({Classes} classes, {Total} samples)";
}
