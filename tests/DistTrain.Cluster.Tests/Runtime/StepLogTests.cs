using Xunit;
using System.Text.Json;
using DistTrain.Cluster.Runtime;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Tests.Runtime;

public sealed class StepLogTests
{
    private static MicroBatchDone Done(long step, int mb, double computeMs, double waitMs) =>
        new("w" + mb, step, mb, Loss: 10.0 * (mb + 1), SampleCount: 4, Correct: mb, computeMs, CommunicationMs: 0.5, waitMs, BytesSent: 100);

    [Fact]
    public void AStepLineSumsItsMicroBatchesAndNamesTheFastestAndSlowest()
    {
        string dir = Path.Combine(Path.GetTempPath(), "disttrain-steplog-" + Guid.NewGuid().ToString("N"));
        string path = Path.Combine(dir, "metrics.jsonl");
        try
        {
            using (var log = new StepLog(path, microBatches: 3, stepsPerEpoch: 10, _ => 0.1f))
            {
                log.Begin(0);
                log.Add(Done(0, 2, computeMs: 7.25, waitMs: 1));
                log.Add(Done(0, 0, computeMs: 3.5, waitMs: 2));
                log.Add(Done(0, 0, computeMs: 99, waitMs: 99)); // a repeated report counts once
                log.Add(Done(0, 1, computeMs: 5, waitMs: 3));
                log.End(0);
            }
            var line = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement)
                .Single(e => e.GetProperty("kind").GetString() == "step");
            Assert.Equal(15.75, line.GetProperty("compute_ms").GetDouble(), 9);
            Assert.Equal(3.5, line.GetProperty("compute_min_ms").GetDouble(), 9);
            Assert.Equal(7.25, line.GetProperty("compute_max_ms").GetDouble(), 9);
            Assert.Equal(6.0, line.GetProperty("wait_ms").GetDouble(), 9);
            Assert.Equal(12, line.GetProperty("samples").GetInt32());
            Assert.Equal(300, line.GetProperty("bytes_sent").GetInt64());
            Assert.Equal(60.0 / 12, line.GetProperty("loss").GetDouble(), 6); // summed loss over summed samples
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void EpochRecordsCarryTheirStepsTrainingLossAccuracyAndSamples()
    {
        // 3 steps an epoch, 2 micro-batches of 4 samples a step, 5 steps: epoch 0's record is written with step 3's line,
        // the last one by Epoch() with the run's evaluation; train fields come from the steps' reports.
        string dir = Path.Combine(Path.GetTempPath(), "disttrain-steplog-" + Guid.NewGuid().ToString("N"));
        string path = Path.Combine(dir, "metrics.jsonl");
        try
        {
            using (var log = new StepLog(path, microBatches: 2, stepsPerEpoch: 3, _ => 0.1f))
            {
                for (long step = 0; step < 5; step++)
                {
                    log.Begin(step);
                    log.Add(Done(step, 0, 1, 0));   // loss 10, 0 correct
                    log.Add(Done(step, 1, 1, 0));   // loss 20, 1 correct
                    log.End(step);
                }
                log.Epoch(new DistTrain.Training.EpochMetrics(1, 5, double.NaN, double.NaN, 0.25, 0.875, 0, 0));
            }
            var epochs = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement)
                .Where(e => e.GetProperty("kind").GetString() == "epoch").ToList();
            Assert.Equal(2, epochs.Count);
            Assert.Equal(0, epochs[0].GetProperty("epoch").GetInt32());
            Assert.Equal(24, epochs[0].GetProperty("samples").GetInt32());
            Assert.Equal(90.0 / 24, epochs[0].GetProperty("train_loss").GetDouble(), 9);
            Assert.Equal(3.0 / 24, epochs[0].GetProperty("train_accuracy").GetDouble(), 9);
            Assert.Equal(JsonValueKind.Null, epochs[0].GetProperty("test_accuracy").ValueKind); // only the end of the run evaluates
            Assert.True(epochs[0].GetProperty("seconds").GetDouble() > 0);
            Assert.Equal(16, epochs[1].GetProperty("samples").GetInt32());
            Assert.Equal(60.0 / 16, epochs[1].GetProperty("train_loss").GetDouble(), 9);
            Assert.Equal(0.875, epochs[1].GetProperty("test_accuracy").GetDouble(), 9);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
    [Fact]
    public void ReportsOfAStepLeasedAheadCountAndAnEpochLastsFromItsFirstBeginToItsLastEnd()
    {
        // Workers lease one step ahead, so a report can come before its step begins; and lines are written late (here: all at
        // the end of the run, a report of each step missing until then), so an epoch's seconds must come from its steps' times.
        // Step 0's second report never comes: its line is written as it is when the log is disposed.
        string dir = Path.Combine(Path.GetTempPath(), "disttrain-steplog-" + Guid.NewGuid().ToString("N"));
        string path = Path.Combine(dir, "metrics.jsonl");
        try
        {
            using (var log = new StepLog(path, microBatches: 2, stepsPerEpoch: 2, _ => 0.1f))
            {
                for (long step = 0; step < 4; step++)
                {
                    if (step > 0) log.Add(Done(step, 1, 1, 0)); // before Begin: computed on a lease ahead
                    log.Begin(step);
                    Thread.Sleep(30);
                    log.End(step);
                }
                log.Add(Done(0, 0, 1, 0)); // step 0's micro-batch 1 never reports
                for (long step = 1; step < 3; step++) log.Add(Done(step, 0, 1, 0));
                log.Epoch(new DistTrain.Training.EpochMetrics(1, 4, double.NaN, double.NaN, 0.5, 0.5, 0, 0));
                log.Add(Done(3, 0, 1, 0)); // the last step's report comes after the run's end: its line and the epoch wait for it
            }
            var records = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            var steps = records.Where(e => e.GetProperty("kind").GetString() == "step").ToList();
            var epochs = records.Where(e => e.GetProperty("kind").GetString() == "epoch").ToList();
            Assert.Equal([4, 8, 8, 8], steps.Select(s => s.GetProperty("samples").GetInt32()));
            Assert.Equal([12, 16], epochs.Select(e => e.GetProperty("samples").GetInt32()));
            for (int epoch = 0; epoch < 2; epoch++)
            {
                double stepSeconds = steps.Where(s => s.GetProperty("epoch").GetInt32() == epoch).Sum(s => s.GetProperty("step_s").GetDouble());
                double seconds = epochs[epoch].GetProperty("seconds").GetDouble();
                Assert.True(seconds >= stepSeconds && seconds < stepSeconds + 1, $"epoch {epoch}: {seconds} s for steps of {stepSeconds} s");
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
