// Training progress for people: a Spectre.Console progress bar per epoch when the terminal is
// interactive, else plain lines (about every tenth of an epoch, and at each epoch end) for logs and CI.
using System.Diagnostics;
using System.Globalization;
using DistTrain.Nn.Training;
using DistTrain.Training;
using Spectre.Console;

namespace DistTrain.Cli.Training;

public sealed class TrainProgress(TextWriter console, bool interactive, int epochs)
{
    private ProgressContext? _ctx;
    private ProgressTask? _task;
    private int _taskEpoch = -1;
    private long _lastLine = Stopwatch.GetTimestamp();
    private double _lossEma = double.NaN;

    /// <summary>Runs <paramref name="train"/> inside the live display (or plainly).</summary>
    public void Run(Action train)
    {
        if (!interactive) { train(); return; }
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => { _ctx = ctx; train(); });
    }

    public void Step(in StepMetrics m)
    {
        // One process: the whole step is compute; nothing is sent or waited for.
        Cluster.Telemetry.RunMeters.Step(m.Step, m.Epoch, m.Loss, m.Samples, m.Seconds, m.Seconds, 0, 0, 0);
        _lossEma = double.IsNaN(_lossEma) ? m.Loss : 0.95 * _lossEma + 0.05 * m.Loss;
        if (_ctx is not null)
        {
            if (_task is null || _taskEpoch != m.Epoch)
            {
                _task = _ctx.AddTask($"epoch {m.Epoch + 1}/{epochs}", maxValue: m.StepsInEpoch);
                _taskEpoch = m.Epoch;
            }
            _task.Value = m.StepInEpoch + 1;
            if (m.StepInEpoch % 10 == 0)
                _task.Description = string.Create(CultureInfo.InvariantCulture, $"epoch {m.Epoch + 1}/{epochs} loss {_lossEma:F4} {m.SamplesPerSecond:N0}/s");
            return;
        }
        int every = Math.Max(1, m.StepsInEpoch / 10);
        double since = Stopwatch.GetElapsedTime(_lastLine).TotalSeconds;
        if (((m.StepInEpoch + 1) % every == 0 && since >= 2) || since > 30)
        {
            _lastLine = Stopwatch.GetTimestamp();
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {m.Epoch + 1}/{epochs} step {m.StepInEpoch + 1}/{m.StepsInEpoch} (global {m.Step + 1}) loss {_lossEma:F4} lr {m.LearningRate:G4} {m.SamplesPerSecond:N0} samples/s"));
        }
    }

    public void Epoch(in EpochMetrics m)
    {
        var line = string.Create(CultureInfo.InvariantCulture,
            $"epoch {m.Epoch + 1}/{epochs} done in {m.Seconds:F1} s: train loss {m.TrainLoss:F4} acc {Pct(m.TrainAccuracy)} | test loss {m.TestLoss:F4} acc {Pct(m.TestAccuracy)}");
        if (_ctx is not null) AnsiConsole.MarkupLine(Markup.Escape(line));
        else console.WriteLine(line);
    }

    private static string Pct(double v) => double.IsNaN(v) ? "-" : v.ToString("P2", CultureInfo.InvariantCulture);
}
