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

    /// <summary>A copy of the IDX set <paramref name="spec"/> with one byte of its training images changed (a pixel, past the header).</summary>
    private static (string Spec, string Images) CopyWithOneByteChanged(string spec)
    {
        var copy = Directory.CreateTempSubdirectory("disttrain-idx-copy-").FullName;
        foreach (var f in Directory.GetFiles(spec["idx:".Length..])) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var images = Path.Combine(copy, "train-images-idx3-ubyte");
        FlipOneByte(images);
        return ($"idx:{copy}", images);
    }

    private static void FlipOneByte(string file)
    {
        var bytes = File.ReadAllBytes(file);
        bytes[16 + 3 * 784 + 400] ^= 0xFF; // sample 3, a pixel near the middle
        File.WriteAllBytes(file, bytes);
    }

    [Fact]
    public void The_same_data_passes_and_data_one_byte_apart_is_named_with_both_fingerprints_and_its_files()
    {
        var spec = TestData.WriteIdx(40, 10);
        var mine = Train(spec);
        var info = new DatasetInfo(spec, mine.Count, 0, mine.Fingerprint());
        Assert.Null(ClusterNode.DatasetMismatch(info, Train(spec))); // loaded again: bit-identical
        Assert.Null(ClusterNode.DatasetMismatch(info with { TrainFingerprint = "" }, mine)); // nothing to compare

        var (otherSpec, images) = CopyWithOneByteChanged(spec);
        var other = Train(otherSpec);
        Assert.Equal(mine.Count, other.Count);
        var why = ClusterNode.DatasetMismatch(info with { Spec = otherSpec }, other);
        Assert.NotNull(why);
        Assert.Contains(mine.Fingerprint(), why);
        Assert.Contains(other.Fingerprint(), why);
        string sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(images)));
        Assert.Contains($"{images} (sha256 {sha})", why);
        Assert.Contains(Path.Combine(otherSpec["idx:".Length..], "train-labels-idx1-ubyte"), why);
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
            // The worker's machine holds the same files but for one byte of the training images, under the same path.
            FlipOneByte(Path.Combine(dir, "train-images-idx3-ubyte"));
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
            Assert.Contains(Path.Combine(dir, "train-images-idx3-ubyte"), worker.Refusal);
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
