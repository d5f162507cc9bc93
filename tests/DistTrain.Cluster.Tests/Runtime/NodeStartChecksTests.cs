// What a node checks before it trains: its training data is the coordinator's (the job carries the SHA-256 fingerprint of
// the training set; a worker whose copy differs is refused, naming both), and --hostname is an address of this machine
// (else one clear error before anything binds, instead of actors that restart forever).
using System.Net;
using System.Net.Sockets;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;

namespace DistTrain.Cluster.Tests.Runtime;

[Collection("cluster")]
public sealed class NodeStartChecksTests
{
    private static Dataset Train(string spec) => DatasetSpec.Parse(spec).Load().Train;

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [Fact]
    public void The_same_data_passes_and_other_data_is_named_with_both_fingerprints()
    {
        var spec = TestData.WriteIdx(40, 10);
        var mine = Train(spec);
        var info = new DatasetInfo(spec, mine.Count, 0, mine.Fingerprint());
        Assert.Null(ClusterNode.DatasetMismatch(info, Train(spec))); // loaded again: bit-identical
        Assert.Null(ClusterNode.DatasetMismatch(info with { TrainFingerprint = "" }, mine)); // nothing to compare

        var other = Train(TestData.WriteIdx(40, 10, seed: 8));
        var why = ClusterNode.DatasetMismatch(info, other);
        Assert.NotNull(why);
        Assert.Contains(mine.Fingerprint(), why);
        Assert.Contains(other.Fingerprint(), why);
        Assert.Contains("disttrain data check", why);
    }

    [Fact]
    public async Task A_worker_whose_copy_of_the_data_differs_is_refused_naming_both_fingerprints()
    {
        var spec = TestData.WriteIdx(40, 10);
        var dir = spec["idx:".Length..];
        var expected = Train(spec).Fingerprint();
        var job = new TrainJob
        {
            ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson, Dataset = spec, Epochs = 1, BatchSize = 8, Seed = 3, MaxSteps = 2,
        };
        int port = FreePort();
        var coordinator = ClusterNode.Start(new NodeOptions
        {
            Roles = ["coordinator", "ps"], Job = job, PsActors = 1, PsShards = 1, Workers = 0, MinWorkers = 1,
            OutDir = Directory.CreateTempSubdirectory("disttrain-fp-").FullName, Overrides = new ClusterOverrides { Port = port },
        });
        ClusterNode? worker = null;
        try
        {
            // The worker's machine holds other files under the same path.
            var other = TestData.WriteIdx(40, 10, seed: 8)["idx:".Length..];
            foreach (var f in Directory.GetFiles(other, "train-*")) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), overwrite: true);
            var changed = Train(spec).Fingerprint();
            Assert.NotEqual(expected, changed);

            worker = ClusterNode.Start(new NodeOptions
            {
                Roles = ["worker"], Workers = 1, ComputeThreads = 1,
                Overrides = new ClusterOverrides { SeedNodes = [$"akka.tcp://disttrain@127.0.0.1:{port}"] },
            });
            await worker.WhenLocalActorsStopped().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.NotNull(worker.Refusal);
            Assert.Contains(expected, worker.Refusal);
            Assert.Contains(changed, worker.Refusal);
            Assert.False(coordinator.Completion.IsCompleted); // nothing was trained on the wrong data
        }
        finally
        {
            if (worker is not null) await worker.DisposeAsync();
            await coordinator.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("10.255.255.1", "is not an address of this machine")]
    [InlineData("no-such-host.invalid", "cannot be resolved")]
    public void A_hostname_that_is_not_this_machines_is_one_clear_error_before_anything_binds(string host, string problem)
    {
        var e = Assert.Throws<ArgumentException>(() => ClusterNode.Start(new NodeOptions
        {
            Roles = ["ps"], PsActors = 0, Workers = 0, Overrides = new ClusterOverrides { Hostname = host, Insecure = true },
        }));
        Assert.Contains($"'{host}'", e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Contains("--hostname", e.Message);
    }
}
