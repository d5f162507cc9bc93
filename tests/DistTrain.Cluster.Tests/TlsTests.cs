// Akka remoting over TLS with mutual authentication: scripts/make-certs.sh writes certificates that load and chain to
// their CA; the config requires TLS (or --insecure, with a warning) wherever remoting is reachable from other machines;
// and with real ActorSystems on 127.0.0.1 a node whose certificate the cluster CA signed joins, while a node with
// another CA's certificate or without TLS does not.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Runtime;
using Xunit;

namespace DistTrain.Cluster.Tests;

/// <summary>Two CAs made by scripts/make-certs.sh: A (the cluster's) with nodes "127.0.0.1" and "second", B (a stranger's) with "127.0.0.1".</summary>
public sealed class ClusterCertificates : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("disttrain-certs-").FullName;
    public string A => Path.Combine(Dir, "a");
    public string B => Path.Combine(Dir, "b");

    public ClusterCertificates()
    {
        MakeCerts(A, "127.0.0.1", "second");
        MakeCerts(B, "127.0.0.1");
    }

    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DistTrain.sln"))) return dir.FullName;
        throw new InvalidOperationException("repository root (DistTrain.sln) not found above " + AppContext.BaseDirectory);
    }

    public static void MakeCerts(string outDir, params string[] nodes)
    {
        var psi = new ProcessStartInfo("bash", [Path.Combine(RepoRoot(), "scripts", "make-certs.sh"), "--out", outDir, .. nodes])
        { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "make-certs.sh did not finish within 60 s");
        Assert.True(p.ExitCode == 0, $"make-certs.sh failed ({p.ExitCode}): {err.Result}");
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

public sealed class TlsConfigTests(ClusterCertificates certs) : IClassFixture<ClusterCertificates>
{
    private static ClusterOverrides Tls(string dir, string node = "127.0.0.1") =>
        new() { TlsCertificate = Path.Combine(dir, node + ".p12"), TlsCa = Path.Combine(dir, "ca.pem") };

    [Fact]
    public void Make_certs_writes_node_certificates_that_load_with_their_key_and_chain_only_to_their_own_CA()
    {
        var (cert, ca) = new TlsSettings(Path.Combine(certs.A, "second.p12"), Path.Combine(certs.A, "ca.pem")).Load(_ => null);
        Assert.True(cert.HasPrivateKey);
        Assert.Contains("CN=second", cert.Subject);
        Assert.Null(TlsSettings.Verify(cert, ca));
        Assert.Equal(cert.Issuer, ca.Subject);

        // B's certificate does not chain to A, even though its subject is the same as A's node.
        var foreign = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(certs.B, "127.0.0.1.p12"), null);
        Assert.NotNull(TlsSettings.Verify(foreign, ca));
        var e = Assert.Throws<ArgumentException>(() => new TlsSettings(Path.Combine(certs.B, "127.0.0.1.p12"), Path.Combine(certs.A, "ca.pem")).Load(_ => null));
        Assert.Contains("is not signed by", e.Message);
        // The CA alone (no private key) is not a node certificate.
        var pem = Assert.Throws<ArgumentException>(() => new TlsSettings(Path.Combine(certs.A, "ca.pem"), Path.Combine(certs.A, "ca.pem")).Load(_ => null));
        Assert.Contains("disttrain.tls.certificate", pem.Message);

        // Running it again adds a node under the same CA.
        ClusterCertificates.MakeCerts(certs.A, "third");
        var (third, ca2) = new TlsSettings(Path.Combine(certs.A, "third.p12"), Path.Combine(certs.A, "ca.pem")).Load(_ => null);
        Assert.Equal(ca.Thumbprint, ca2.Thumbprint);
        Assert.Null(TlsSettings.Verify(third, ca));
    }

    [Theory]
    [InlineData("multinode", "10.0.0.5")]
    [InlineData("local", "10.0.0.5")]   // local config, but a non-loopback address: reachable all the same
    [InlineData("multinode", "127.0.0.1")] // multinode requires it whatever the address (it binds 0.0.0.0)
    public void A_reachable_node_needs_tls_or_an_explicit_insecure_that_warns(string env, string host)
    {
        var e = Assert.Throws<ArgumentException>(() => ClusterConfig.Load(env, new ClusterOverrides { Hostname = host }));
        Assert.Contains("--tls-cert", e.Message);
        Assert.Contains("--insecure", e.Message);
        Assert.Contains("scripts/make-certs.sh", e.Message);

        var insecure = DistTrainSettings.From(ClusterConfig.Load(env, new ClusterOverrides { Hostname = host, Insecure = true }));
        Assert.Null(insecure.Tls);
        Assert.Contains("plain TCP", insecure.InsecureWarning);

        var secure = DistTrainSettings.From(ClusterConfig.Load(env, new ClusterOverrides { Hostname = host }.Over(Tls(certs.A))));
        Assert.Equal(Path.Combine(certs.A, "127.0.0.1.p12"), secure.Tls!.CertificatePath);
        Assert.Null(secure.InsecureWarning);
    }

    [Fact]
    public void A_loopback_node_runs_without_tls_and_without_a_warning()
    {
        var settings = DistTrainSettings.From(ClusterConfig.Load("local"));
        Assert.Null(settings.Tls);
        Assert.Null(settings.InsecureWarning);
    }

    [Fact]
    public void Incomplete_or_missing_tls_files_are_named()
    {
        var noCa = Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", new ClusterOverrides { TlsCertificate = Path.Combine(certs.A, "127.0.0.1.p12") }));
        Assert.Contains("--tls-ca", noCa.Message);
        var noCert = Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", new ClusterOverrides { TlsCa = Path.Combine(certs.A, "ca.pem") }));
        Assert.Contains("--tls-cert", noCert.Message);
        var missing = Path.Combine(certs.Dir, "nowhere.p12");
        var gone = Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", Tls(certs.A) with { TlsCertificate = missing }));
        Assert.Contains($"disttrain.tls.certificate = '{missing}' does not exist", gone.Message);
        var bad = Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", new ClusterOverrides { Hocon = "disttrain.tls.required = maybe" }));
        Assert.Contains("disttrain.tls.required", bad.Message);
        Assert.Throws<ArgumentException>(() => ClusterOverrides.FromEnvironment(k => k == "DISTTRAIN_INSECURE" ? "perhaps" : null));
        Assert.True(ClusterOverrides.FromEnvironment(k => k == "DISTTRAIN_INSECURE" ? "1" : null).Insecure);
    }

    [Fact]
    public void Seed_addresses_follow_the_transport()
    {
        var seeds = new ClusterOverrides { SeedNodes = ["akka.tcp://disttrain@127.0.0.1:4053", "akka.ssl.tcp://disttrain@127.0.0.1:4054"] };
        var config = ClusterConfig.Load("local", seeds.Over(Tls(certs.A)));
        Assert.Equal(["akka.ssl.tcp://disttrain@127.0.0.1:4053", "akka.ssl.tcp://disttrain@127.0.0.1:4054"], config.GetStringList("akka.cluster.seed-nodes"));
        var e = Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", seeds));
        Assert.Contains("speaks TLS", e.Message);
    }
}

public sealed class TlsClusterTests(ClusterCertificates certs) : IClassFixture<ClusterCertificates>
{
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    // Nodes with a shard role and no shard actors: the cluster machinery and nothing else.
    private static ClusterNode Node(int port, string? seed, string? certDir, string? caDir = null, string certName = "127.0.0.1") =>
        ClusterNode.Start(new NodeOptions
        {
            Roles = ["ps"], PsActors = 0, Workers = 0,
            Overrides = new ClusterOverrides
            {
                Port = port, Hostname = "127.0.0.1", SeedNodes = seed is null ? null : [seed],
                TlsCertificate = certDir is null ? null : Path.Combine(certDir, certName + ".p12"),
                TlsCa = certDir is null ? null : Path.Combine(caDir ?? certDir, "ca.pem"),
                Hocon = "akka.cluster.seed-node-timeout = 2s\nakka.cluster.retry-unsuccessful-join-after = 1s",
            },
        });

    private static async Task<bool> Up(ClusterNode node, TimeSpan within)
    {
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Akka.Cluster.Cluster.Get(node.System).RegisterOnMemberUp(() => up.TrySetResult());
        return await Task.WhenAny(up.Task, Task.Delay(within)) == up.Task;
    }

    /// <summary>A stranger's node: TLS with a certificate another CA signed, and a transport that accepts any peer
    /// certificate — so only the seed's own check can keep it out.</summary>
    private static Akka.Actor.ActorSystem Stranger(int port, int seedPort, string p12)
    {
        var config = Akka.Configuration.ConfigurationFactory.ParseString($"""
            akka.remote.dot-netty.tcp.enable-ssl = on
            akka.cluster.seed-nodes = ["akka.ssl.tcp://disttrain@127.0.0.1:{seedPort}"]
            akka.cluster.seed-node-timeout = 2s
            akka.cluster.retry-unsuccessful-join-after = 1s
            akka.loglevel = ERROR
            """).WithFallback(ClusterConfig.Load("local", new ClusterOverrides { Port = port, Hostname = "127.0.0.1", Roles = ["ps"] }));
        var cert = X509CertificateLoader.LoadPkcs12FromFile(p12, null);
        var setup = Akka.Actor.Setup.ActorSystemSetup.Create(Akka.Actor.BootstrapSetup.Create().WithConfig(config))
            .And(new Akka.Remote.Transport.DotNetty.DotNettySslSetup(cert, suppressValidation: true, requireMutualAuthentication: true));
        return Akka.Actor.ActorSystem.Create("disttrain", setup);
    }

    [Fact]
    public async Task A_node_whose_certificate_the_cluster_CA_did_not_sign_cannot_join_and_one_it_signed_can()
    {
        int seedPort = FreePort();
        var seedAddress = $"akka.tcp://disttrain@127.0.0.1:{seedPort}";
        var seed = Node(seedPort, null, certs.A);
        ClusterNode? good = null, plain = null;
        Akka.Actor.ActorSystem? foreign = null;
        try
        {
            Assert.Equal("akka.ssl.tcp", Akka.Cluster.Cluster.Get(seed.System).SelfAddress.Protocol);
            Assert.True(await Up(seed, TimeSpan.FromSeconds(20)), "the seed did not form its cluster");
            // A stranger whose certificate another CA signed, and a node without TLS, try first; then a node with a
            // certificate of the cluster's CA.
            foreign = Stranger(FreePort(), seedPort, Path.Combine(certs.B, "127.0.0.1.p12"));
            plain = Node(FreePort(), seedAddress, null);
            good = Node(FreePort(), seedAddress, certs.A, certName: "second");
            Assert.True(await Up(good, TimeSpan.FromSeconds(30)), "a node with the cluster CA's certificate did not join");
            await Task.Delay(TimeSpan.FromSeconds(2)); // the strangers had as long as the good node and more

            var members = Akka.Cluster.Cluster.Get(seed.System).State.Members.Select(m => m.Address).ToArray();
            Assert.Equal(2, members.Length);
            Assert.Contains(Akka.Cluster.Cluster.Get(good.System).SelfAddress, members);
            foreach (var stranger in new[] { foreign, plain.System })
            {
                var self = Akka.Cluster.Cluster.Get(stranger);
                Assert.DoesNotContain(self.SelfAddress, members);
                Assert.DoesNotContain(self.State.Members, m => m.Address == self.SelfAddress && m.Status == Akka.Cluster.MemberStatus.Up);
            }
        }
        finally
        {
            // Strangers never joined: terminate them without a leave; the members leave in parallel.
            await Task.WhenAll(new[] { foreign, plain?.System }.OfType<Akka.Actor.ActorSystem>().Select(s => s.Terminate().WaitAsync(TimeSpan.FromSeconds(10)))
                .Concat(new[] { good, seed }.OfType<ClusterNode>().Select(n => n.DisposeAsync().AsTask())));
        }
    }
}
