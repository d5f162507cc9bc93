// Akka remoting over TLS with mutual authentication (disttrain.tls.*): every node presents its own certificate
// (a PKCS#12 file, as scripts/make-certs.sh writes it) and accepts a peer only if the peer's certificate chains to
// the cluster CA named in the config — not to the machine's trust store, so a certificate any public CA signed is a
// stranger too. Akka.Remote's DotNetty transport runs the handshake; we hand it the certificate and the check
// through DotNettySslSetup (custom validators exist since Akka 1.5.55).
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;

namespace DistTrain.Cluster.Configuration;

/// <summary>Where a node's certificate and the cluster CA are (disttrain.tls.certificate / .ca).</summary>
public sealed record TlsSettings(string CertificatePath, string CaPath)
{
    /// <summary>Password of the PKCS#12 file, from DISTTRAIN_TLS_PASSWORD (make-certs.sh writes none unless it is set).</summary>
    public const string PasswordVariable = "DISTTRAIN_TLS_PASSWORD";

    /// <summary>Loads this node's certificate (with its private key) and the CA; every failure names the file and the fix.</summary>
    public (X509Certificate2 Certificate, X509Certificate2 Ca) Load(Func<string, string?>? getenv = null)
    {
        getenv ??= Environment.GetEnvironmentVariable;
        X509Certificate2 cert, ca;
        try { cert = X509CertificateLoader.LoadPkcs12FromFile(CertificatePath, getenv(PasswordVariable)); }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"disttrain.tls.certificate = '{CertificatePath}' cannot be loaded as a PKCS#12 file with its private key ({e.Message}). " +
                $"Make one with scripts/make-certs.sh; if it has a password, set {PasswordVariable}.", e);
        }
        if (!cert.HasPrivateKey)
            throw new ArgumentException($"disttrain.tls.certificate = '{CertificatePath}' holds no private key; give the node's .p12 from scripts/make-certs.sh, not its .pem.");
        try { ca = X509CertificateLoader.LoadCertificateFromFile(CaPath); }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"disttrain.tls.ca = '{CaPath}' cannot be read as a certificate ({e.Message}); give the ca.pem that scripts/make-certs.sh wrote.", e);
        }
        if (Verify(cert, ca) is { } why)
            throw new ArgumentException($"disttrain.tls.certificate = '{CertificatePath}' ({cert.Subject}) is not signed by disttrain.tls.ca = '{CaPath}' ({ca.Subject}): {why}. " +
                "Peers would refuse this node; make its certificate with the same CA (scripts/make-certs.sh --out DIR reuses DIR/ca.pem).");
        return (cert, ca);
    }

    /// <summary>Null if <paramref name="cert"/> chains to <paramref name="ca"/> alone (no system roots, no revocation
    /// look-ups, no downloads), else why not.</summary>
    public static string? Verify(X509Certificate2 cert, X509Certificate2 ca, X509Certificate2Collection? intermediates = null)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (intermediates is not null) chain.ChainPolicy.ExtraStore.AddRange(intermediates);
        if (!chain.Build(cert))
            return string.Join("; ", chain.ChainStatus.Select(s => $"{s.Status} ({s.StatusInformation.Trim()})"));
        var root = chain.ChainElements[^1].Certificate;
        return root.RawDataMemory.Span.SequenceEqual(ca.RawDataMemory.Span) ? null : $"the chain ends at {root.Subject}, not at the cluster CA";
    }

    /// <summary>The check Akka runs on every peer certificate, on both ends of every association.</summary>
    public static CertificateValidationCallback Validator(X509Certificate2 ca) => (cert, chain, peer, errors, log) =>
    {
        if (cert is null)
        {
            log.Warning("TLS: refused {0}: it presented no certificate (mutual authentication is required)", peer);
            return false;
        }
        var extra = chain is null ? null : new X509Certificate2Collection(chain.ChainElements.Select(e => e.Certificate).Skip(1).ToArray());
        if (Verify(cert, ca, extra) is not { } why) return true;
        log.Warning("TLS: refused {0}: its certificate {1} is not signed by the cluster CA {2}: {3}", peer, cert.Subject, ca.Subject, why);
        return false;
    };

    /// <summary>What ClusterNode adds to the ActorSystem's setup: this node's certificate, mutual authentication, the CA check.</summary>
    public DotNettySslSetup Setup(Func<string, string?>? getenv = null)
    {
        var (cert, ca) = Load(getenv);
        return new DotNettySslSetup(cert, suppressValidation: false, requireMutualAuthentication: true, customValidator: Validator(ca));
    }
}

/// <summary>The ActorSystem setup of a node: its HOCON, plus the DotNetty TLS setup when disttrain.tls names a certificate.</summary>
public static class NodeTls
{
    public static Akka.Actor.Setup.ActorSystemSetup Setup(Akka.Configuration.Config config, DistTrainSettings settings)
    {
        var setup = Akka.Actor.Setup.ActorSystemSetup.Create(Akka.Actor.BootstrapSetup.Create().WithConfig(config));
        return settings.Tls is { } tls ? setup.And(tls.Setup()) : setup;
    }
}
