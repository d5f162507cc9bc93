using System.Net.Sockets;
// The multi-host test of issue 15 (docs/architecture.md "Security"): every process on a host of its own — a network
// namespace on one bridge, one address each — with Akka remoting over mutually authenticated TLS (certificates from
// scripts/make-certs.sh) and the multinode configuration. A seed/coordinator, 2 `ps` and 2 workers train to the
// one-process weights bit for bit while a node whose certificate another CA signed tries to join, and a stranger on the
// bridge (a namespace of its own, no key, no certificate of the cluster) tries to associate with every Akka port and to
// get a restore, push or gradient frame accepted by every data-plane listener. Skipped, saying why, only where network
// namespaces cannot be made (not root, no iproute2).
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DistTrain.Cli.Scale;
using DistTrain.Cli.Tests.Support;
using DistTrain.Cluster.Runtime;
using DistTrain.Cluster.Tests.Runtime;
using DistTrain.Nn.Models;
using DistTrain.Training;
using Xunit;
using Xunit.Abstractions;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class NamespaceTlsClusterTests(ITestOutputHelper output) : IDisposable
{
    private readonly DisttrainProcesses _procs = new(output);
    private HostNetwork? _net;

    /// <summary>The bridge and <paramref name="hosts"/> namespaces, or a skip naming why they cannot be made here.</summary>
    internal static HostNetwork MakeHosts(int hosts, out (string Namespace, string Address)[] made)
    {
        HostNetwork? net = null;
        try
        {
            net = HostNetwork.Create(rate: null);
            made = Enumerable.Range(0, hosts).Select(net.Host).ToArray();
            return net;
        }
        catch (InvalidOperationException e)
        {
            net?.Dispose();
            Skip.If(true, $"network namespaces cannot be made here ({e.Message}); CI runs as root, where they can");
            throw; // not reached
        }
    }

    [SkippableFact]
    public async Task A_tls_cluster_on_a_bridge_trains_to_the_one_process_weights_and_keeps_strangers_out()
    {
        // Hosts: 0 coordinator, 1-2 ps, 3-4 workers, 5 a node with a foreign CA's certificate, 6 the stranger.
        _net = MakeHosts(7, out var hosts);
        var job = new TrainJob
        {
            ModelSpecJson = ModelSpec.Parse(TestData.TinyCnn).CanonicalJson, Dataset = TestData.WriteIdx(1600, 50), Epochs = 8,
            BatchSize = 32, MicroBatch = 8, Optimizer = "adam", Lr = 1e-2f, Seed = 11, MaxSteps = 300, Schedule = "warmup:3+cosine",
        };
        // The one-process run for the weights, beside the cluster's (it only has to be done by the end).
        var referenceRun = ClusterNode.RunLocal(job, 1, 1, Directory.CreateTempSubdirectory("disttrain-ref-").FullName);

        var certs = Directory.CreateTempSubdirectory("disttrain-certs-").FullName;
        var foreign = Directory.CreateTempSubdirectory("disttrain-foreign-").FullName;
        MakeCerts(certs, hosts.Take(5).Select(h => h.Address).ToArray());
        MakeCerts(foreign, hosts[5].Address, hosts[6].Address); // a CA of its own: as valid-looking, but not the cluster's
        string Tls(string dir, string host) => $"--tls-cert \"{Path.Combine(dir, host + ".p12")}\" --tls-ca \"{Path.Combine(dir, "ca.pem")}\"";
        var spec = Path.Combine(Directory.CreateTempSubdirectory("disttrain-spec-").FullName, "tiny.json");
        File.WriteAllText(spec, job.ModelSpecJson);
        var outDir = Directory.CreateTempSubdirectory("disttrain-ns-").FullName;
        // The shipped multinode configuration (TLS required, fixed ports 4053 / 4060+); the foreign node gives up sooner.
        var root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(MultiProcessClusterTests.Dll())!, "..", "..", "..", "..", ".."));
        var foreignConfig = Path.Combine(foreign, "foreign.hocon");
        File.WriteAllText(foreignConfig, File.ReadAllText(Path.Combine(root, "cluster-config", "multinode.hocon")) + "\ndisttrain.join-timeout = 8s\n");

        string seed = $"akka.tcp://disttrain@{hosts[0].Address}:4053";
        var coord = _procs.Start(
            $"train --model \"{spec}\" --dataset \"{job.Dataset}\" --epochs {job.Epochs} --batch-size {job.BatchSize} --micro-batch {job.MicroBatch} " +
            $"--optimizer {job.Optimizer} --lr {job.Lr} --seed {job.Seed} --max-steps {job.MaxSteps} --schedule {job.Schedule} " +
            $"--workers 0 --ps-shards 2 --ps-local 0 --wait-workers 2 --cluster-port 4053 --hostname {hosts[0].Address} --config multinode " +
            $"--out \"{outDir}\" {Tls(certs, hosts[0].Address)}", "coordinator", hosts[0].Namespace);
        await _procs.WaitForLine(coord, l => l.StartsWith("cluster seed node ", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
        var ps = Enumerable.Range(1, 2).Select(i => _procs.Start(
            $"node --roles ps --hostname {hosts[i].Address} --config multinode --seed-nodes {seed} {Tls(certs, hosts[i].Address)}", $"ps{i}", hosts[i].Namespace)).ToArray();
        var rogue = _procs.Start($"node --roles worker --hostname {hosts[5].Address} --config \"{foreignConfig}\" --seed-nodes {seed} {Tls(foreign, hosts[5].Address)}",
            "foreign-node", hosts[5].Namespace);
        await _procs.WaitForLine(coord, l => l.Contains(" of 2 holds ["), TimeSpan.FromSeconds(90), count: 2);

        // The shards hold their initial weights (version 0) and no worker has joined: the moment a stranger's restore frame
        // once replaced them. Every port of the coordinator and the ps hosts, from the stranger's namespace.
        using var strangerCert = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(foreign, hosts[6].Address + ".p12"), null);
        var refused = new List<string>();
        var failures = new List<string>();
        var tried = new HashSet<(string, int)>();
        void Attack(Process p, string address, string who)
        {
            var ports = ProcFacts.ListeningPorts(p.Id).Where(port => tried.Add((address, port))).ToArray();
            var found = NetNamespace.Run(hosts[6].Namespace, () =>
            {
                var lines = new List<string>();
                foreach (var port in ports)
                {
                    var ep = new IPEndPoint(IPAddress.Parse(address), port);
                    bool dataPlane;
                    // A port read from /proc can close before it is tried (the run ended, a listener of the start went): refused.
                    try { dataPlane = Stranger.IsDataPlane(ep); }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused) { lines.Add($"{who} :{port} closed before it was tried"); continue; }
                    failures.AddRange(dataPlane ? Stranger.AttackDataPlane(ep) : Stranger.AttackAkka(ep, strangerCert));
                    lines.Add($"{who} {(dataPlane ? "data plane" : "akka")} :{port}");
                }
                return lines;
            });
            refused.AddRange(found);
        }
        Attack(coord, hosts[0].Address, "coordinator");
        for (int i = 0; i < 2; i++) Attack(ps[i], hosts[i + 1].Address, $"ps{i + 1}");

        var workers = Enumerable.Range(3, 2).Select(i => _procs.Start(
            $"node --roles worker --hostname {hosts[i].Address} --config multinode --seed-nodes {seed} {Tls(certs, hosts[i].Address)}", $"worker{i - 2}", hosts[i].Namespace)).ToArray();
        // A worker's listener (the shards' parameter pushes) opens once it has the job: attack it while the run goes on.
        foreach (var (w, i) in workers.Select((w, i) => (w, i)))
        {
            var clock = Stopwatch.StartNew();
            while (ProcFacts.ListeningPorts(w.Id).Length < 2 && !coord.HasExited && clock.Elapsed < TimeSpan.FromSeconds(90)) await Task.Delay(20);
            Assert.False(coord.HasExited, "the run ended before the workers' listeners could be tried");
            Attack(w, hosts[i + 3].Address, $"worker{i + 1}");
        }
        // The coordinator opens its data-plane listener (checkpoints, replicated state) once the run has begun.
        Attack(coord, hosts[0].Address, "coordinator");
        Assert.False(coord.HasExited, "the run ended while the stranger was still trying: nothing was tried against a live run");
        foreach (var line in refused) _procs.Log($"stranger refused at {line}");
        Assert.True(failures.Count == 0, "a stranger got further than refusal:\n" + string.Join("\n", failures));
        // Every kind of port was tried: 5 Akka ports, the coordinator's checkpoint receiver, 2 shards' and 2 workers' listeners.
        Assert.Equal(5, refused.Count(l => l.Contains(" akka :")));
        Assert.True(refused.Count(l => l.Contains(" data plane :")) >= 5, "fewer data-plane listeners than expected:\n" + string.Join("\n", refused));

        Assert.True(coord.WaitForExit(TimeSpan.FromMinutes(3)), "the coordinator did not finish within 3 minutes");
        coord.WaitForExit();
        Assert.Equal(0, coord.ExitCode);
        var reference = await referenceRun.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Null(reference.Error);
        Assert.Equal(Sha(reference.ModelPath!), Sha(Path.Combine(outDir, "model.safetensors")));
        Assert.DoesNotContain(_procs.Lines(coord), l => l.Contains("(3 in all)"));

        // The node with the foreign CA's certificate never joined: the seed refused its certificate, and it exits 3
        // (after its join timeout, or sooner when Akka gives up on the refused association and stops its ActorSystem),
        // saying it could not join and how to get a certificate of the cluster's CA — not that it was removed.
        Assert.True(rogue.WaitForExit(TimeSpan.FromSeconds(60)), "the node with a foreign certificate kept running");
        rogue.WaitForExit();
        Assert.Equal(3, rogue.ExitCode);
        var rogueLines = _procs.Lines(rogue);
        Assert.DoesNotContain(rogueLines, l => l.Contains(" is up with roles"));
        Assert.DoesNotContain(rogueLines, l => l.Contains("removed from the cluster"));
        Assert.Contains(rogueLines, l => (l.Contains("could not join the cluster") || l.Contains("did not join the cluster within")) && l.Contains("scripts/make-certs.sh"));
        Assert.DoesNotContain(_procs.Lines(coord), l => l.Contains(hosts[5].Address) && l.Contains(" joined ("));
        Assert.Contains(_procs.Lines(coord), l => l.Contains($"TLS: refused [::ffff:{hosts[5].Address}]") && l.Contains("not signed by the cluster CA"));
    }

    private static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    /// <summary>scripts/make-certs.sh: a CA (new for a new <paramref name="dir"/>) and one certificate per host.</summary>
    internal static void MakeCerts(string dir, params string[] hosts)
    {
        var root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(MultiProcessClusterTests.Dll())!, "..", "..", "..", "..", ".."));
        var psi = new ProcessStartInfo("bash", [Path.Combine(root, "scripts", "make-certs.sh"), "--out", dir, .. hosts]) { RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(60_000) && p.ExitCode == 0, $"make-certs.sh failed: {err}");
    }

    public void Dispose()
    {
        // Processes first (they live in the namespaces), then the namespaces and the bridge, also after a failure.
        _procs.Dispose();
        _net?.Dispose();
    }
}
