// `disttrain node` / `train` on a reachable address without TLS: exit code 2 and one line naming --tls-cert, --tls-ca and
// --insecure, before any actor starts; a certificate that cannot be loaded, or a --hostname of another machine, is named
// the same way.
using DistTrain.Cli;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class SecurityCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void A_multinode_node_without_tls_is_refused_with_the_way_out()
    {
        var (code, _, err) = Run("node", "--config", "multinode", "--hostname", "127.0.0.1", "--seed-nodes", "akka.tcp://disttrain@127.0.0.1:1");
        Assert.Equal(2, code);
        Assert.Contains("--tls-cert", err);
        Assert.Contains("--insecure", err);

        var (tcode, _, terr) = Run("train", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=40:test-n=20", "--workers", "0", "--wait-workers", "1",
            "--cluster-port", "1", "--config", "local", "--hostname", "10.11.12.13");
        Assert.Equal(2, tcode);
        Assert.Contains("--insecure", terr);
    }

    [Fact]
    public void A_certificate_that_is_not_there_is_named()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"disttrain-none-{Guid.NewGuid():N}.p12");
        var (code, _, err) = Run("node", "--seed-nodes", "akka.tcp://disttrain@127.0.0.1:1", "--tls-cert", missing, "--tls-ca", missing);
        Assert.Equal(2, code);
        Assert.Contains(missing, err);
        Assert.Contains("scripts/make-certs.sh", err);
    }

    [Fact]
    public void A_hostname_of_another_machine_exits_with_code_2_and_names_it()
    {
        var (code, _, err) = Run("node", "--hostname", "10.255.255.1", "--insecure", "--seed-nodes", "akka.tcp://disttrain@127.0.0.1:1");
        Assert.Equal(2, code);
        Assert.Contains("'10.255.255.1' is not an address of this machine", err);
    }

    [Fact]
    public void Insecure_starts_a_node_where_tls_is_required_and_warns_on_stderr()
    {
        // An environment file that requires TLS on loopback and gives up joining after 2 s (no seed runs).
        var env = Path.Combine(Path.GetTempPath(), $"disttrain-insecure-{Guid.NewGuid():N}.hocon");
        File.WriteAllText(env, "# TLS required here\ndisttrain.tls.required = on\n# give up joining quickly\ndisttrain.join-timeout = 2s\n");
        try
        {
            var (refused, _, rerr) = Run("node", "--config", env, "--seed-nodes", "akka.tcp://disttrain@127.0.0.1:1");
            Assert.Equal(2, refused);
            Assert.Contains("--insecure", rerr);

            var (code, _, err) = Run("node", "--config", env, "--insecure", "--seed-nodes", "akka.tcp://disttrain@127.0.0.1:1");
            Assert.Equal(3, code); // started, then found no seed node
            Assert.Contains("WARNING: --insecure", err);
            Assert.Contains("did not join the cluster", err);
        }
        finally { File.Delete(env); }
    }
}
