// metrics.jsonl writer: one JSON object per line, {"kind":"step",...} after each optimizer step and
// {"kind":"epoch",...} after each epoch (DESIGN: Observability). NaN (no test set, regression
// accuracy) is written as null. Extra per-step fields (compute/comm/wait time) can be appended by callers.
using System.Text.Json;

namespace DistTrain.Training;

public sealed class MetricsLog : IDisposable
{
    private readonly FileStream _file;
    private readonly Utf8JsonWriter _json;

    private readonly bool _flushEachLine;

    /// <param name="append">Continue an existing file (a resumed run) instead of starting a new one.</param>
    /// <param name="flushEachLine">Write each step line through at once (a cluster's coordinator: what a killed process wrote
    /// is on disk for the coordinator that continues the run); otherwise lines are buffered.</param>
    public MetricsLog(string path, bool append = false, bool flushEachLine = false)
    {
        _flushEachLine = flushEachLine;
        Path = path;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        if (append) CutTornTail(path);
        _file = new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16);
        _json = new Utf8JsonWriter(_file);
    }

    public string Path { get; }

    /// <summary>
    /// A process killed while writing leaves the file's last line cut anywhere (even a whole object without its newline):
    /// continuing it as it is would glue the next line to it. The cut line is dropped (its step is computed and written
    /// again by whoever continues the run); a whole last object only gets its newline.
    /// </summary>
    private static void CutTornTail(string path)
    {
        if (!File.Exists(path)) return;
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        if (f.Length == 0) return;
        f.Seek(-1, SeekOrigin.End);
        if (f.ReadByte() == '\n') return;
        long start = f.Length;
        var one = new byte[1];
        while (start > 0)
        {
            f.Seek(start - 1, SeekOrigin.Begin);
            f.ReadExactly(one);
            if (one[0] == '\n') break;
            start--;
        }
        var tail = new byte[f.Length - start];
        f.Seek(start, SeekOrigin.Begin);
        f.ReadExactly(tail);
        bool whole;
        try { using var _ = JsonDocument.Parse(tail); whole = true; }
        catch (JsonException) { whole = false; }
        if (whole) { f.Seek(0, SeekOrigin.End); f.WriteByte((byte)'\n'); }
        else f.SetLength(start);
    }

    public void Step(in StepMetrics m, IReadOnlyDictionary<string, double>? extra = null)
    {
        _json.WriteStartObject();
        _json.WriteString("kind", "step");
        _json.WriteNumber("step", m.Step);
        _json.WriteNumber("epoch", m.Epoch);
        Number("loss", m.Loss);
        _json.WriteNumber("samples", m.Samples);
        Number("samples_per_s", Math.Round(m.SamplesPerSecond, 1));
        Number("step_s", m.Seconds);
        if (float.IsFinite(m.LearningRate)) _json.WriteNumber("lr", m.LearningRate); else _json.WriteNull("lr");
        if (!double.IsNaN(m.GradNorm)) Number("grad_norm", m.GradNorm);
        if (extra is not null) foreach (var (k, v) in extra) Number(k, v);
        End();
        if (_flushEachLine) _file.Flush();
    }

    public void Epoch(in EpochMetrics m)
    {
        _json.WriteStartObject();
        _json.WriteString("kind", "epoch");
        _json.WriteNumber("epoch", m.Epoch);
        _json.WriteNumber("step", m.Step);
        Number("train_loss", m.TrainLoss);
        Number("train_accuracy", m.TrainAccuracy);
        Number("test_loss", m.TestLoss);
        Number("test_accuracy", m.TestAccuracy);
        Number("seconds", m.Seconds);
        _json.WriteNumber("samples", m.Samples);
        End();
        _file.Flush();
    }

    /// <summary>A line of another kind (e.g. "run": the run's mode), with text and number fields in the given order.</summary>
    public void Record(string kind, IEnumerable<KeyValuePair<string, string>> text, IEnumerable<KeyValuePair<string, double>>? numbers = null)
    {
        _json.WriteStartObject();
        _json.WriteString("kind", kind);
        foreach (var (k, v) in text) _json.WriteString(k, v);
        if (numbers is not null) foreach (var (k, v) in numbers) Number(k, v);
        End();
        _file.Flush();
    }

    private void Number(string name, double v)
    {
        if (double.IsFinite(v)) _json.WriteNumber(name, v); else _json.WriteNull(name);
    }

    private void End()
    {
        _json.WriteEndObject();
        _json.Flush();
        _json.Reset();
        _file.WriteByte((byte)'\n');
    }

    public void Dispose()
    {
        _json.Dispose();
        _file.Dispose();
    }
}
