// The live view of a cluster run (`disttrain train --workers N | --cluster-port P` on a terminal): an epoch bar with
// ETA, loss and samples/s, a table of workers (state, micro-batches done, samples/s, last seen) and the newest events.
// It reads the coordinator's instruments (RunMeters, through a MeterListener) and its progress lines (worker joined /
// left, checkpoints); when stdout is not a terminal the lines are printed plainly instead.
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.RegularExpressions;
using DistTrain.Cluster.Telemetry;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace DistTrain.Cli.Training;

public sealed partial class ClusterProgress : IDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, WorkerRow> _workers = [];
    private readonly SortedDictionary<int, (string Range, string Node)> _shards = [];
    private readonly Queue<string> _events = new();
    private readonly MeterListener _listener = new();
    private readonly Func<long> _clock;
    private long _step = -1, _samples;
    private int _epoch;
    private double _loss = double.NaN, _lossEma = double.NaN;
    private readonly long _started;

    private sealed class WorkerRow
    {
        public string State = "joined";
        public long MicroBatches, Samples;
        public long FirstSeen, LastSeen;
    }

    private readonly Func<(long Total, int PerEpoch)> _plan;

    /// <param name="clock">Stopwatch timestamps (tests pass their own).</param>
    /// <param name="plan">Steps in all and per epoch (default: the coordinator's, RunMeters.Plan).</param>
    /// <param name="listen">Follow RunMeters (tests feed <see cref="Step"/> and <see cref="MicroBatch"/> themselves).</param>
    public ClusterProgress(Func<long>? clock = null, Func<(long, int)>? plan = null, bool listen = true)
    {
        _clock = clock ?? Stopwatch.GetTimestamp;
        _plan = plan ?? (() => (RunMeters.PlannedSteps, RunMeters.StepsPerEpoch));
        _started = _clock();
        if (!listen) return;
        _listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == RunMeters.MeterName) l.EnableMeasurementEvents(i); };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            string? worker = null;
            foreach (var t in tags) if (t.Key == "worker") worker = t.Value as string;
            if (i.Name == "steps") StepDone();
            else if (i.Name == "worker_micro_batches" && worker is not null) MicroBatch(worker, 0);
            else if (i.Name == "worker_samples" && worker is not null) MicroBatch(worker, (int)v, count: false);
        });
        _listener.Start();
    }

    /// <summary>A worker finished a micro-batch of <paramref name="samples"/> samples.</summary>
    public void MicroBatch(string worker, int samples, bool count = true)
    {
        lock (_gate)
        {
            var row = Row(worker);
            if (count) row.MicroBatches++;
            row.Samples += samples;
            row.LastSeen = _clock();
            if (row.State != "left") row.State = "working";
        }
    }

    private WorkerRow Row(string worker)
    {
        if (!_workers.TryGetValue(worker, out var row)) _workers[worker] = row = new WorkerRow { FirstSeen = _clock(), LastSeen = _clock() };
        return row;
    }

    private void StepDone() => Step(RunMeters.LastStep, (int)RunMeters.LastEpoch, RunMeters.LastLoss, RunMeters.SamplesSoFar);

    /// <summary>Step <paramref name="step"/> (0-based) of <paramref name="epoch"/> was applied; <paramref name="samples"/> trained so far.</summary>
    public void Step(long step, int epoch, double loss, long samples)
    {
        lock (_gate)
        {
            (_step, _epoch, _loss, _samples) = (step, epoch, loss, samples);
            if (double.IsFinite(_loss)) _lossEma = double.IsNaN(_lossEma) ? _loss : 0.9 * _lossEma + 0.1 * _loss;
        }
    }

    /// <summary>A progress line of the coordinator: worker joined / left update the table; every line goes to the events.</summary>
    public void Report(string line)
    {
        lock (_gate)
        {
            var shard = ShardHolds().Match(line);
            if (shard.Success) _shards[int.Parse(shard.Groups[1].Value, CultureInfo.InvariantCulture)] = (shard.Groups[2].Value, shard.Groups[3].Value);
            var joined = Joined().Match(line);
            if (joined.Success) { var r = Row(joined.Groups[1].Value); r.State = "joined"; r.LastSeen = _clock(); }
            var left = Left().Match(line);
            if (left.Success) Row(left.Groups[1].Value).State = "left";
            if (line.StartsWith("step ", StringComparison.Ordinal)) return; // the bar says it
            _events.Enqueue(line);
            while (_events.Count > 4) _events.Dequeue();
        }
    }

    /// <summary>What the terminal shows now.</summary>
    public IRenderable Render()
    {
        lock (_gate)
        {
            long now = _clock();
            double elapsed = Stopwatch.GetElapsedTime(_started, now).TotalSeconds;
            var (total, perEpochPlanned) = _plan();
            int perEpoch = Math.Max(1, perEpochPlanned);
            long done = _step + 1;
            int epochs = total > 0 ? (int)((total + perEpoch - 1) / perEpoch) : 0;
            long inEpoch = done <= 0 ? 0 : done - (long)_epoch * perEpoch;
            long epochSteps = Math.Min(perEpoch, Math.Max(1, total - (long)_epoch * perEpoch));
            double fraction = epochSteps == 0 ? 0 : Math.Clamp((double)inEpoch / epochSteps, 0, 1);
            double rate = elapsed > 0 ? _samples / elapsed : 0;
            string eta = done > 0 && total > 0 ? Duration(elapsed / done * (total - done)) : "-";
            int width = 16, filled = (int)Math.Round(fraction * width);
            var bar = new string('█', filled) + new string('░', width - filled);
            var head = string.Create(CultureInfo.InvariantCulture,
                $"epoch {_epoch + 1}/{(epochs > 0 ? epochs : '?')} {bar} {fraction * 100:F0}% step {Math.Max(done, 0)}/{(total > 0 ? total : '?')} ETA {eta} loss {(double.IsNaN(_lossEma) ? "-" : _lossEma.ToString("F4", CultureInfo.InvariantCulture))} {rate:N0} samples/s");

            var table = new Table().Border(TableBorder.Rounded)
                .AddColumn("worker").AddColumn("state").AddColumn(new TableColumn("micro-batches").RightAligned())
                .AddColumn(new TableColumn("samples/s").RightAligned()).AddColumn(new TableColumn("last seen").RightAligned());
            foreach (var (id, r) in _workers.OrderBy(w => w.Key, StringComparer.Ordinal))
            {
                double since = Stopwatch.GetElapsedTime(r.LastSeen, now).TotalSeconds;
                string state = r.State == "working" && since > 5 ? "idle" : r.State;
                double span = Stopwatch.GetElapsedTime(r.FirstSeen, r.State == "left" ? r.LastSeen : now).TotalSeconds;
                table.AddRow(Markup.Escape(ShortId(id)), Markup.Escape(state), r.MicroBatches.ToString("N0", CultureInfo.InvariantCulture),
                    (span > 0 ? r.Samples / span : 0).ToString("N0", CultureInfo.InvariantCulture), $"{since:F1} s ago");
            }
            var rows = new List<IRenderable> { new Text(head), table };
            if (_shards.Count > 0)
            {
                // Every shard applies every step (the barrier), so the step in the head is each one's version.
                var shards = new Table().Border(TableBorder.Rounded).AddColumn(new TableColumn("shard").RightAligned()).AddColumn("key range")
                    .AddColumn("node").AddColumn(new TableColumn("applied").RightAligned());
                foreach (var (index, (range, node)) in _shards.OrderBy(s => s.Key))
                    shards.AddRow(index.ToString(CultureInfo.InvariantCulture), Markup.Escape(range), Markup.Escape(ShortId(node)),
                        $"step {Math.Max(done, 0)}");
                rows.Add(shards);
            }
            rows.AddRange(_events.Select(e => new Text(e)));
            return new Rows(rows);
        }
    }

    /// <summary>Runs <paramref name="wait"/> with the view refreshed twice a second until it returns.</summary>
    public T Live<T>(Func<T> wait)
    {
        T result = default!;
        AnsiConsole.Profile.Capabilities.Interactive = true; // a terminal on stdout is enough; stdin may be /dev/null
        // Problems (NodeLog's lines) go into the view while it owns the terminal, and onto stderr again once it stops.
        var problems = new List<string>();
        Cluster.Configuration.NodeLog.Sink = line => { lock (problems) problems.Add(line); Report(line); };
        try
        {
            AnsiConsole.Live(Render()).AutoClear(false).Start(ctx =>
            {
                IsLive = true;
                try
                {
                    var task = Task.Run(wait);
                    // Not task.Wait(timeout): it wraps a cancellation (Ctrl-C) in an AggregateException; GetResult rethrows it as is.
                    while (!task.IsCompleted)
                    {
                        Task.WhenAny(task, Task.Delay(500)).Wait();
                        ctx.UpdateTarget(Render());
                    }
                    result = task.GetAwaiter().GetResult();
                    Finish();
                    ctx.UpdateTarget(Render());
                }
                finally { IsLive = false; }
            });
        }
        finally
        {
            Cluster.Configuration.NodeLog.Sink = null;
            lock (problems) foreach (var p in problems) Console.Error.WriteLine(p);
        }
        return result;
    }

    /// <summary>A worker's id without the scheme and system name every one of them shares: 10.0.0.2:4053/w0.</summary>
    private static string ShortId(string id)
    {
        int at = id.IndexOf('@');
        return at >= 0 && id.Contains("://", StringComparison.Ordinal) ? id[(at + 1)..] : id;
    }

    /// <summary>True while <see cref="Live"/> draws: progress lines go into the view, not onto the console.</summary>
    public bool IsLive { get; private set; }

    /// <summary>The run ended: workers still working are done.</summary>
    public void Finish()
    {
        lock (_gate)
            foreach (var r in _workers.Values)
                if (r.State is "working" or "joined") r.State = "done";
    }

    private static string Duration(double seconds) =>
        !double.IsFinite(seconds) ? "-" : TimeSpan.FromSeconds(Math.Round(seconds)).ToString(seconds >= 3600 ? @"h\:mm\:ss" : @"m\:ss", CultureInfo.InvariantCulture);

    public void Dispose() => _listener.Dispose();

    [GeneratedRegex(@"^shard (\d+) of \d+ holds (\[\d+, \d+\)) on (\S+)")]
    private static partial Regex ShardHolds();

    [GeneratedRegex(@"^worker (\S+) joined")]
    private static partial Regex Joined();

    [GeneratedRegex(@"^worker (\S+) left")]
    private static partial Regex Left();
}
