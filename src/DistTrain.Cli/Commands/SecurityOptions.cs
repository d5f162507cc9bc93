// The TLS options `disttrain train` (as a seed node) and `disttrain node` share: this node's certificate, the cluster CA,
// and --insecure to run a reachable node without TLS (cluster-config/base.hocon, disttrain.tls).
using System.CommandLine;
using DistTrain.Cluster.Configuration;

namespace DistTrain.Cli.Commands;

internal static class SecurityOptions
{
    public static (Option<string?> Cert, Option<string?> Ca, Option<bool> Insecure) Create() =>
    (
        new Option<string?>("--tls-cert") { Description = "This node's certificate and key, a PKCS#12 file from scripts/make-certs.sh (Akka remoting over TLS with mutual authentication). Default: DISTTRAIN_TLS_CERT." },
        new Option<string?>("--tls-ca") { Description = "The cluster CA (ca.pem from scripts/make-certs.sh); peers whose certificate it did not sign are refused. Default: DISTTRAIN_TLS_CA." },
        new Option<bool>("--insecure") { Description = "Run a node reachable from other machines (--config multinode, or a non-loopback --hostname) without TLS; anyone who reaches its port can then control the run." }
    );

    public static ClusterOverrides Overrides(ParseResult parse, Option<string?> cert, Option<string?> ca, Option<bool> insecure) => new()
    {
        TlsCertificate = parse.GetValue(cert), TlsCa = parse.GetValue(ca), Insecure = parse.GetValue(insecure) ? true : null,
    };
}
