// The cluster run's live view (ClusterProgress) rendered to text with a clock the test moves: the epoch bar, step count,
// ETA and throughput follow from the steps and the time; the workers table from the coordinator's lines and reports.
using System.Diagnostics;
using DistTrain.Cli.Training;
using Spectre.Console;
using Xunit;

namespace DistTrain.Cli.Tests;

public sealed class ClusterProgressTests
{
    private static string Text(ClusterProgress view)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 160;
        console.Write(view.Render());
        return writer.ToString();
    }

    [Fact]
    public void TheBarEtaAndWorkerTableFollowTheRun()
    {
        long now = 0;
        using var view = new ClusterProgress(() => now, () => (20, 10), listen: false);
        view.Report("worker akka.tcp://disttrain@127.0.0.1:4001/w0 joined (1 in all)");
        view.Report("worker akka.tcp://disttrain@127.0.0.1:4002/w0 joined (2 in all)");
        for (int i = 0; i < 6; i++) view.MicroBatch("akka.tcp://disttrain@127.0.0.1:4001/w0", 8);
        for (int i = 0; i < 2; i++) view.MicroBatch("akka.tcp://disttrain@127.0.0.1:4002/w0", 8);
        now = 4 * Stopwatch.Frequency; // 4 s in: 12 steps done (of 20), epoch 2 at 2/10
        view.Step(11, 1, 0.5, 384);
        view.Report("worker akka.tcp://disttrain@127.0.0.1:4002/w0 left; 1 micro-batch(es) re-queued, 1 worker(s) remain");
        var text = Text(view);
        Assert.Contains("epoch 2/2 ", text);
        Assert.Contains(" 20% step 12/20 ETA 0:03 loss 0.5000 96 samples/s", text); // 4 s / 12 steps × 8 left; 384 samples / 4 s
        var fast = Cells(text, "127.0.0.1:4001/w0");
        Assert.Equal(["working", "6", "12", "4.0 s ago"], fast); // 48 samples in the 4 s since it joined
        var gone = Cells(text, "127.0.0.1:4002/w0");
        Assert.Equal("left", gone[0]);
        Assert.Equal("2", gone[1]);
        Assert.Contains(text.Split('\n'), l => l.StartsWith("worker akka.tcp://disttrain@127.0.0.1:4002/w0 left;", StringComparison.Ordinal));

        Assert.DoesNotContain("akka.tcp://disttrain@127.0.0.1:4001", text.Split('\n').Single(r => r.Contains("4001/w0") && r.Contains('│'))); // the common prefix is left out

        view.Report("shard 1 of 2 holds [4096, 8000) on akka.tcp://disttrain@127.0.0.1:4010");
        view.Report("shard 0 of 2 holds [0, 4096) on akka.tcp://disttrain@127.0.0.1:4009");
        var shards = Text(view).Split('\n').Where(l => l.Contains("holds") == false && l.Contains("127.0.0.1:40") && l.Contains("step 12")).ToArray();
        Assert.Equal(2, shards.Length);
        Assert.Contains("[0, 4096)", shards[0]);   // in shard order, each with its range, node and the step applied
        Assert.Contains("127.0.0.1:4009", shards[0]);
        Assert.Contains("[4096, 8000)", shards[1]);

        now = 10 * Stopwatch.Frequency; // nothing from it for 10 s
        Assert.Equal("idle", Cells(Text(view), "127.0.0.1:4001/w0")[0]);
        view.Finish();
        Assert.Equal("done", Cells(Text(view), "127.0.0.1:4001/w0")[0]);
        Assert.Equal("left", Cells(Text(view), "127.0.0.1:4002/w0")[0]);
    }

    /// <summary>The cells after the worker's id in its table row.</summary>
    private static string[] Cells(string text, string worker)
    {
        var row = Assert.Single(text.Split('\n'), r => r.Contains(worker) && r.Contains('│'));
        return row.Split('│', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Skip(1).ToArray();
    }
    [Fact]
    public void ProgressLinesOfALostWorkerAndAFailedCheckpointCountAsFaults()
    {
        var counted = new List<string>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == DistTrain.Cluster.Telemetry.RunMeters.MeterName && i.Name == "faults") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((_, v, tags, _) =>
        {
            foreach (var t in tags) if (t.Key == "kind") lock (counted) counted.Add($"{t.Value}:{v}");
        });
        listener.Start();
        ClusterRunFaults.Count("worker akka.tcp://disttrain@127.0.0.1:4002/w0 left; 1 micro-batch(es) re-queued, 1 worker(s) remain");
        ClusterRunFaults.Count("worker akka.tcp://disttrain@127.0.0.1:4002/w0 left after the run");
        ClusterRunFaults.Count("worker akka.tcp://disttrain@127.0.0.1:4002/w0 joined (2 in all)");
        ClusterRunFaults.Count("checkpoint of step 40 NOT written: a shard's state did not arrive within 20 s");
        lock (counted) Assert.Equal(["worker_lost:1", "checkpoint_failed:1"], counted);
    }
    [Fact]
    public void TheLiveViewReturnsTheRunsResultAndLetsACancellationThrough()
    {
        using var view = new ClusterProgress(plan: () => (10, 5), listen: false);
        Assert.Equal(42, view.Live(() => { Thread.Sleep(50); return 42; }));
        Assert.False(view.IsLive);
        Assert.Throws<OperationCanceledException>(() => view.Live<int>(() => throw new OperationCanceledException())); // Ctrl-C: ClusterRun catches this type
    }
    [Fact]
    public void AProblemDuringTheLiveViewShowsInItAndOnStderrAfterIt()
    {
        using var view = new ClusterProgress(plan: () => (10, 5), listen: false);
        string problem = "odd thing " + Guid.NewGuid().ToString("N");
        var stderr = new StringWriter();
        var before = Console.Error;
        Console.SetError(stderr);
        string during;
        try
        {
            during = view.Live(() =>
            {
                DistTrain.Cluster.Configuration.NodeLog.Write(new Akka.Event.Warning("akka://disttrain/system/x", typeof(object), problem), "n1");
                return stderr.ToString(); // nothing on stderr while the view owns the terminal
            });
        }
        finally { Console.SetError(before); }
        Assert.DoesNotContain(problem, during);
        Assert.Contains(problem, Text(view));
        Assert.Single(stderr.ToString().Split('\n'), l => l.Contains(problem) && l.StartsWith("node n1: Akka says: ", StringComparison.Ordinal));
    }
}
