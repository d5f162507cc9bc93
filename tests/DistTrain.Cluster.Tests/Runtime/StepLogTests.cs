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
}
