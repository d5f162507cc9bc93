// Typed view of the `disttrain { ... }` HOCON section (cluster-config/base.hocon documents each key),
// with the checks that make an impossible value a clear error.
using Akka.Configuration;

namespace DistTrain.Cluster.Configuration;

/// <param name="GradientChunkFloats">Sync mode: a worker sends a gradient part as soon as its layers' backward is done, in frames of
/// at least this many floats (the rest after the backward); 0 = the whole range after the backward.</param>
/// <param name="Limits">Connection count and timeouts of each listener (max-connections, hello-timeout, read-timeout, idle-timeout).</param>
public sealed record DataPlaneSettings(string Host, int Port, long MaxFrameBytes, int SocketBufferBytes, TimeSpan ConnectTimeout,
    int GradientChunkFloats = DistTrain.Cluster.Runtime.NodeEndpoints.DefaultGradientChunkFloats, DistTrain.Cluster.DataPlane.DataPlaneLimits? Limits = null)
{
    /// <summary>disttrain.data-plane.public-host: the address peers are told to connect to when it is not the bound one
    /// (behind NAT, or a relay in front of this node as `disttrain scale --latency` puts there); null = Host.</summary>
    public string? PublicHost { get; init; }
}

/// <param name="Tls">Akka remoting over mutually authenticated TLS (disttrain.tls.certificate and .ca); null = plain TCP.</param>
/// <param name="InsecureWarning">Set when TLS is required here (disttrain.tls.required) but the node runs without it because
/// of --insecure: what ClusterNode prints before it starts.</param>
public sealed record DistTrainSettings(
    string SystemName, int MaxMessageBytes, TimeSpan JoinTimeout, DataPlaneSettings DataPlane, TlsSettings? Tls = null, string? InsecureWarning = null)
{
    /// <summary>A node with no reachable coordinator for this long exits (disttrain.coordinator-lost-timeout).</summary>
    public TimeSpan CoordinatorLostTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>The shortest lease on a micro-batch (disttrain.lease-floor) and its length in median step times (lease-step-multiple).</summary>
    public TimeSpan LeaseFloor { get; init; } = TimeSpan.FromSeconds(1);
    public double LeaseStepMultiple { get; init; } = 4;
    /// <summary>A micro-batch held this many median micro-batch times also goes to an idle worker (disttrain.backup-multiple); 0 = never.</summary>
    public double BackupMultiple { get; init; } = 2;
    /// <summary>Sync runs: every this many steps the coordinator keeps the shards' state in memory, the point a lost shard's
    /// replacement and the others roll back to (disttrain.replicate-every); 0 = checkpoints and the start only.</summary>
    public long ReplicateEvery { get; init; } = 10;
    /// <summary>The coordinator singleton's removal margin (disttrain.takeover-margin): how soon a standby takes over.</summary>
    public TimeSpan TakeoverMargin { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Every key allowed under `disttrain`; anything else in a config file is an error.</summary>
    public static readonly HashSet<string> KnownKeys =
    [
        "disttrain.system-name", "disttrain.max-message-bytes", "disttrain.join-timeout", "disttrain.coordinator-lost-timeout",
        "disttrain.lease-floor", "disttrain.lease-step-multiple", "disttrain.backup-multiple", "disttrain.replicate-every", "disttrain.takeover-margin",
        "disttrain.data-plane.host", "disttrain.data-plane.public-host", "disttrain.data-plane.port", "disttrain.data-plane.max-frame-bytes",
        "disttrain.data-plane.socket-buffer-bytes", "disttrain.data-plane.connect-timeout", "disttrain.data-plane.gradient-chunk-floats",
        "disttrain.data-plane.max-connections", "disttrain.data-plane.hello-timeout", "disttrain.data-plane.read-timeout", "disttrain.data-plane.idle-timeout",
        "disttrain.tls.certificate", "disttrain.tls.ca", "disttrain.tls.required", "disttrain.tls.insecure",
    ];

    public static DistTrainSettings From(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        foreach (var key in KnownKeys)
            if (!config.HasPath(key))
                throw new ArgumentException($"Cluster config lacks '{key}'; load it through ClusterConfig.Load so base.hocon supplies it.");

        var remoteHost = config.GetString("akka.remote.dot-netty.tcp.hostname", "127.0.0.1");
        var publicHost = config.GetString("akka.remote.dot-netty.tcp.public-hostname", "");
        if (remoteHost == "0.0.0.0" && string.IsNullOrEmpty(publicHost))
            throw new ArgumentException("akka.remote.dot-netty.tcp.hostname is 0.0.0.0 but no address to advertise: give --hostname (or DISTTRAIN_HOSTNAME) with this machine's address.");

        var maxMessage = Read(config, "disttrain.max-message-bytes", c => c.GetInt("disttrain.max-message-bytes", 0), "an integer");
        var frame = config.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size") ?? 128000;
        if (maxMessage <= 0)
            throw new ArgumentException($"disttrain.max-message-bytes = {maxMessage} must be positive.");
        if (maxMessage >= frame)
            throw new ArgumentException(
                $"disttrain.max-message-bytes = {maxMessage} must be below akka.remote.dot-netty.tcp.maximum-frame-size = {frame}, else remoting drops big messages silently; lower it or raise the frame size.");

        var dpHost = config.GetString("disttrain.data-plane.host", "");
        if (string.IsNullOrEmpty(dpHost)) dpHost = string.IsNullOrEmpty(publicHost) ? remoteHost : publicHost;
        var dpPublic = config.GetString("disttrain.data-plane.public-host", "");
        var dpPort = Read(config, "disttrain.data-plane.port", c => c.GetInt("disttrain.data-plane.port", 0), "an integer port");
        if (dpPort is < 0 or > 65535) throw new ArgumentException($"disttrain.data-plane.port = {dpPort} is out of range; use 0..65535 (0 = any free port).");
        var maxFrame = Read(config, "disttrain.data-plane.max-frame-bytes", c => c.GetLong("disttrain.data-plane.max-frame-bytes", 0), "a number of bytes");
        if (maxFrame <= 0 || maxFrame > int.MaxValue * 4L)
            throw new ArgumentException($"disttrain.data-plane.max-frame-bytes = {maxFrame} must be in 1..{int.MaxValue * 4L} (a float[] holds at most 2^31-1 floats).");
        var buffer = Read(config, "disttrain.data-plane.socket-buffer-bytes", c => c.GetInt("disttrain.data-plane.socket-buffer-bytes", 0), "a number of bytes");
        if (buffer < 64 * 1024) throw new ArgumentException($"disttrain.data-plane.socket-buffer-bytes = {buffer} is too small; use at least 65536 (262144 measured best on loopback, 8388608 across machines).");
        var connect = Read(config, "disttrain.data-plane.connect-timeout", c => c.GetTimeSpan("disttrain.data-plane.connect-timeout", null, false), "a duration such as 5s");
        if (connect <= TimeSpan.Zero) throw new ArgumentException("disttrain.data-plane.connect-timeout must be positive, e.g. 5s.");
        var chunk = Read(config, "disttrain.data-plane.gradient-chunk-floats", c => c.GetInt("disttrain.data-plane.gradient-chunk-floats", -1), "an integer");
        if (chunk < 0) throw new ArgumentException($"disttrain.data-plane.gradient-chunk-floats = {chunk} must be 0 (send after the backward) or a positive number of floats, e.g. 65536.");
        var maxConnections = Read(config, "disttrain.data-plane.max-connections", c => c.GetInt("disttrain.data-plane.max-connections", 0), "an integer");
        if (maxConnections < 1)
            throw new ArgumentException($"disttrain.data-plane.max-connections = {maxConnections} must be at least 1 (each listener needs one connection per peer: a shard's, one per worker plus the coordinator's); the default is 256.");
        var hello = Read(config, "disttrain.data-plane.hello-timeout", c => c.GetTimeSpan("disttrain.data-plane.hello-timeout", null, false), "a duration such as 10s");
        if (hello <= TimeSpan.Zero) throw new ArgumentException($"disttrain.data-plane.hello-timeout = {hello} must be positive, e.g. 10s.");
        var read = Read(config, "disttrain.data-plane.read-timeout", c => c.GetTimeSpan("disttrain.data-plane.read-timeout", null, false), "a duration such as 30s");
        if (read <= TimeSpan.Zero) throw new ArgumentException($"disttrain.data-plane.read-timeout = {read} must be positive, e.g. 30s.");
        var idle = Read(config, "disttrain.data-plane.idle-timeout", c => c.GetTimeSpan("disttrain.data-plane.idle-timeout", null, false), "a duration such as 10m, or 0s for never");
        if (idle < TimeSpan.Zero) throw new ArgumentException($"disttrain.data-plane.idle-timeout = {idle} must be 0s (never) or positive, e.g. 10m.");
        var limits = new DistTrain.Cluster.DataPlane.DataPlaneLimits { MaxConnections = maxConnections, HelloTimeout = hello, ReadTimeout = read, IdleTimeout = idle };
        var join = Read(config, "disttrain.join-timeout", c => c.GetTimeSpan("disttrain.join-timeout", null, false), "a duration such as 30s");
        if (join <= TimeSpan.Zero) throw new ArgumentException("disttrain.join-timeout must be positive, e.g. 30s.");
        var lost = Read(config, "disttrain.coordinator-lost-timeout", c => c.GetTimeSpan("disttrain.coordinator-lost-timeout", null, false), "a duration such as 30s");
        if (lost <= TimeSpan.Zero) throw new ArgumentException($"disttrain.coordinator-lost-timeout = {lost} must be positive, e.g. 30s.");
        var floor = Read(config, "disttrain.lease-floor", c => c.GetTimeSpan("disttrain.lease-floor", null, false), "a duration such as 1s");
        if (floor <= TimeSpan.Zero) throw new ArgumentException($"disttrain.lease-floor = {floor} must be positive, e.g. 1s.");
        var multiple = Read(config, "disttrain.lease-step-multiple", c => c.GetDouble("disttrain.lease-step-multiple", 0), "a number such as 4");
        if (!(multiple >= 1) || double.IsInfinity(multiple)) throw new ArgumentException($"disttrain.lease-step-multiple = {multiple} must be at least 1, e.g. 4.");
        var backup = Read(config, "disttrain.backup-multiple", c => c.GetDouble("disttrain.backup-multiple", -1), "a number such as 2");
        if (!(backup == 0 || backup >= 1) || double.IsInfinity(backup))
            throw new ArgumentException($"disttrain.backup-multiple = {backup} must be 0 (no backup copies) or at least 1, e.g. 2.");
        var replicate = Read(config, "disttrain.replicate-every", c => c.GetLong("disttrain.replicate-every", -1), "a number of steps");
        if (replicate < 0) throw new ArgumentException($"disttrain.replicate-every = {replicate} must be 0 (checkpoints only) or a number of steps, e.g. 10.");
        var margin = Read(config, "disttrain.takeover-margin", c => c.GetTimeSpan("disttrain.takeover-margin", TimeSpan.FromSeconds(1), false), "a duration such as 1s");
        if (margin < TimeSpan.Zero) throw new ArgumentException($"disttrain.takeover-margin = {margin} must be 0s or positive, e.g. 1s.");
        var name = config.GetString("disttrain.system-name", "");
        if (string.IsNullOrWhiteSpace(name) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new ArgumentException($"disttrain.system-name = '{name}' must be letters, digits, '-' or '_'.");

        var (tls, warning) = ReadTls(config, string.IsNullOrEmpty(publicHost) ? remoteHost : publicHost, remoteHost);
        return new DistTrainSettings(name, maxMessage, join, new DataPlaneSettings(dpHost, dpPort, maxFrame, buffer, connect, chunk, limits) { PublicHost = string.IsNullOrEmpty(dpPublic) ? null : dpPublic }, tls, warning)
        {
            CoordinatorLostTimeout = lost, LeaseFloor = floor, LeaseStepMultiple = multiple, BackupMultiple = backup, ReplicateEvery = replicate,
            TakeoverMargin = margin,
        };
    }

    /// <summary>
    /// disttrain.tls: a certificate and its CA switch TLS on (both or neither, files that exist). Without them a node whose
    /// remoting is reachable from other machines (required = auto and a non-loopback address, or required = on as in
    /// multinode.hocon) refuses to start unless disttrain.tls.insecure (--insecure) says otherwise, and then it warns.
    /// </summary>
    private static (TlsSettings?, string?) ReadTls(Config config, string advertised, string bound)
    {
        var cert = config.GetString("disttrain.tls.certificate", "");
        var ca = config.GetString("disttrain.tls.ca", "");
        var required = config.GetString("disttrain.tls.required", "auto");
        if (required is not ("auto" or "on" or "off"))
            throw new ArgumentException($"disttrain.tls.required = '{required}' must be auto (required when remoting is reachable from other machines), on or off.");
        var insecure = Read(config, "disttrain.tls.insecure", c => c.GetBoolean("disttrain.tls.insecure", false), "on or off");
        if (cert.Length > 0 != ca.Length > 0)
            throw new ArgumentException(cert.Length > 0
                ? "disttrain.tls.certificate is set but disttrain.tls.ca is not: give --tls-ca with the cluster CA (ca.pem from scripts/make-certs.sh) so peers can be checked."
                : "disttrain.tls.ca is set but disttrain.tls.certificate is not: give --tls-cert with this node's .p12 from scripts/make-certs.sh.");
        if (cert.Length > 0)
        {
            foreach (var (key, path) in new[] { ("disttrain.tls.certificate", cert), ("disttrain.tls.ca", ca) })
                if (!File.Exists(path))
                    throw new ArgumentException($"{key} = '{path}' does not exist; make the cluster's certificates with scripts/make-certs.sh and give their paths.");
            return (new TlsSettings(cert, ca), null);
        }
        bool reachable = required == "on" || (required == "auto" && !(IsLoopback(advertised) && IsLoopback(bound)));
        if (!reachable) return (null, null);
        if (!insecure)
            throw new ArgumentException(
                $"Akka remoting on {(bound == advertised ? bound : $"{bound} (advertised as {advertised})")} would be plain TCP: anyone who reaches its port could join the cluster " +
                "and send any message to any actor. Give --tls-cert NODE.p12 --tls-ca ca.pem (scripts/make-certs.sh makes them; or DISTTRAIN_TLS_CERT / DISTTRAIN_TLS_CA), " +
                "or --insecure to run without TLS on a network you trust (disttrain.tls.required).");
        return (null, "WARNING: --insecure: Akka remoting runs over plain TCP without authentication; anyone who can reach this node's port " +
                      "can join the cluster, read the weights and stop the run. Use it only on a network you trust; see docs/architecture.md \"Security\".");
    }

    private static bool IsLoopback(string host) =>
        host is "localhost" || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip));

    /// <summary>A value of the wrong type (e.g. port = "abc") fails here with the key's name, not deep inside Akka's parser.</summary>
    private static T Read<T>(Config config, string key, Func<Config, T> get, string expected)
    {
        try { return get(config); }
        catch (Exception e) when (e is FormatException or OverflowException or InvalidCastException or ConfigurationException or ArgumentException)
        {
            string raw;
            try { raw = config.GetString(key, "?"); } catch (Exception) { raw = "?"; }
            throw new ArgumentException($"{key} = '{raw}' is not {expected}; fix it in the cluster config (cluster-config/base.hocon documents each key).", e);
        }
    }
}
