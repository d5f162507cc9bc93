// Loads the HOCON of a node: cluster-config/base.hocon, then an environment file (local, multinode or
// a path), then overrides from flags or the environment (seed nodes, hostname, port, roles), and
// validates our `disttrain` section (unknown keys and impossible values are errors that name the fix).
using System.Reflection;
using System.Text;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace DistTrain.Cluster.Configuration;

/// <summary>Values given on the command line or in the environment; null = keep the file's value.</summary>
public sealed record ClusterOverrides
{
    public string[]? SeedNodes { get; init; }
    public string? Hostname { get; init; }
    public int? Port { get; init; }
    public string[]? Roles { get; init; }
    public int? DataPort { get; init; }
    /// <summary>--tls-cert: this node's PKCS#12 certificate (disttrain.tls.certificate).</summary>
    public string? TlsCertificate { get; init; }
    /// <summary>--tls-ca: the cluster CA's PEM certificate (disttrain.tls.ca).</summary>
    public string? TlsCa { get; init; }
    /// <summary>--insecure: run without TLS where it is required (disttrain.tls.insecure).</summary>
    public bool? Insecure { get; init; }
    /// <summary>Extra HOCON text applied last (tests: e.g. "akka.actor.serialize-messages = on").</summary>
    public string? Hocon { get; init; }

    /// <summary>Reads DISTTRAIN_SEED_NODES (comma-separated), DISTTRAIN_HOSTNAME, DISTTRAIN_PORT, DISTTRAIN_ROLES, DISTTRAIN_DATA_PORT,
    /// DISTTRAIN_TLS_CERT, DISTTRAIN_TLS_CA and DISTTRAIN_INSECURE (1, true or on).</summary>
    public static ClusterOverrides FromEnvironment(Func<string, string?>? getenv = null)
    {
        getenv ??= Environment.GetEnvironmentVariable;
        static string[]? List(string? v) => string.IsNullOrWhiteSpace(v) ? null : v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        int? Int(string name)
        {
            var v = getenv(name);
            if (string.IsNullOrWhiteSpace(v)) return null;
            return int.TryParse(v, out var i) ? i : throw new ArgumentException($"{name}='{v}' is not an integer port; set it to a number such as 4053.");
        }
        return new ClusterOverrides
        {
            SeedNodes = List(getenv("DISTTRAIN_SEED_NODES")),
            Hostname = string.IsNullOrWhiteSpace(getenv("DISTTRAIN_HOSTNAME")) ? null : getenv("DISTTRAIN_HOSTNAME"),
            Port = Int("DISTTRAIN_PORT"),
            Roles = List(getenv("DISTTRAIN_ROLES")),
            DataPort = Int("DISTTRAIN_DATA_PORT"),
            TlsCertificate = string.IsNullOrWhiteSpace(getenv("DISTTRAIN_TLS_CERT")) ? null : getenv("DISTTRAIN_TLS_CERT"),
            TlsCa = string.IsNullOrWhiteSpace(getenv("DISTTRAIN_TLS_CA")) ? null : getenv("DISTTRAIN_TLS_CA"),
            Insecure = getenv("DISTTRAIN_INSECURE")?.Trim().ToLowerInvariant() switch
            {
                null or "" => null,
                "1" or "true" or "on" or "yes" => true,
                "0" or "false" or "off" or "no" => false,
                var v => throw new ArgumentException($"DISTTRAIN_INSECURE='{v}' is not a switch; set it to 1 (run without TLS) or unset it."),
            },
        };
    }

    /// <summary>This record's values where set, else <paramref name="other"/>'s (flags win over the environment).</summary>
    public ClusterOverrides Over(ClusterOverrides other) => new()
    {
        SeedNodes = SeedNodes ?? other.SeedNodes, Hostname = Hostname ?? other.Hostname, Port = Port ?? other.Port,
        Roles = Roles ?? other.Roles, DataPort = DataPort ?? other.DataPort,
        TlsCertificate = TlsCertificate ?? other.TlsCertificate, TlsCa = TlsCa ?? other.TlsCa, Insecure = Insecure ?? other.Insecure,
        Hocon = (other.Hocon, Hocon) switch { (null, var h) => h, (var h, null) => h, var (a, b) => a + "\n" + b },
    };
}

public static class ClusterConfig
{
    /// <summary>The environment files shipped in cluster-config/ (embedded in this assembly).</summary>
    public static readonly string[] Environments = ["local", "multinode"];

    // sweep: the node `disttrain sweep --cluster-port` starts; trial: a `disttrain node` that runs a sweep's trials.
    public static readonly string[] KnownRoles = ["coordinator", "ps", "worker", "sweep", "trial"];

    /// <summary>
    /// Effective configuration: overrides > <paramref name="environment"/> ("local", "multinode" or a .hocon path) > base.
    /// <paramref name="configDirectory"/> reads base/env files from a folder instead of the embedded copies.
    /// </summary>
    public static Config Load(string environment = "local", ClusterOverrides? overrides = null, string? configDirectory = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(environment);
        var baseConfig = Parse("base.hocon", ReadSource("base", configDirectory));
        var envConfig = Parse(environment, ReadSource(environment, configDirectory));
        var overrideConfig = Parse("overrides", OverridesHocon(overrides ?? new ClusterOverrides(), envConfig.WithFallback(baseConfig)));
        var config = overrideConfig.WithFallback(envConfig).WithFallback(baseConfig);
        var settings = DistTrainSettings.From(config); // validates values and cross-key rules
        return WithSeedScheme(config, settings.Tls is not null);
    }

    /// <summary>Akka names a TLS node akka.ssl.tcp://...: seed nodes written as akka.tcp:// (scripts, habits) are
    /// rewritten when this node speaks TLS; a TLS seed without TLS here is an error that says what to add.</summary>
    private static Config WithSeedScheme(Config config, bool tls)
    {
        const string plain = "akka.tcp://", secure = "akka.ssl.tcp://";
        var seeds = config.GetStringList("akka.cluster.seed-nodes");
        if (!tls)
        {
            if (seeds.FirstOrDefault(s => s.StartsWith(secure, StringComparison.Ordinal)) is { } ssl)
                throw new ArgumentException($"Seed node {ssl} speaks TLS but this node has no certificate: give --tls-cert NODE.p12 --tls-ca ca.pem (scripts/make-certs.sh).");
            return config;
        }
        if (!seeds.Any(s => s.StartsWith(plain, StringComparison.Ordinal))) return config;
        var fixedSeeds = seeds.Select(s => s.StartsWith(plain, StringComparison.Ordinal) ? secure + s[plain.Length..] : s);
        return ConfigurationFactory.ParseString($"akka.cluster.seed-nodes = [{string.Join(", ", fixedSeeds.Select(Quote))}]").WithFallback(config);
    }

    /// <summary>Text of a shipped file ("base", "local", "multinode") or of a .hocon path.</summary>
    public static string ReadSource(string name, string? configDirectory = null)
    {
        if (name.EndsWith(".hocon", StringComparison.OrdinalIgnoreCase) || name.Contains('/') || name.Contains('\\'))
            return File.Exists(name) ? File.ReadAllText(name)
                : throw new ArgumentException($"Cluster config file '{name}' does not exist; pass local, multinode or the path of a .hocon file.");
        if (configDirectory is not null)
        {
            var path = Path.Combine(configDirectory, name + ".hocon");
            return File.Exists(path) ? File.ReadAllText(path) : throw new ArgumentException($"Cluster config '{path}' does not exist.");
        }
        using var stream = typeof(ClusterConfig).Assembly.GetManifestResourceStream($"cluster-config/{name}.hocon")
            ?? throw new ArgumentException($"Unknown cluster environment '{name}'; use one of {string.Join(", ", Environments)} or the path of a .hocon file.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>Parses one layer and checks its `disttrain` keys against the known set, naming the file.</summary>
    public static Config Parse(string sourceName, string hocon)
    {
        Config layer;
        try { layer = ConfigurationFactory.ParseString(hocon); }
        catch (Exception e) { throw new ArgumentException($"Cluster config '{sourceName}' is not valid HOCON: {e.Message}", e); }
        if (layer.Root is { } root && root.IsObject() && root.GetObject().Items.TryGetValue("disttrain", out var section))
        {
            foreach (var key in LeafKeys("disttrain", section))
                if (!DistTrainSettings.KnownKeys.Contains(key))
                    throw new ArgumentException(
                        $"Cluster config '{sourceName}': unknown key '{key}'. Known keys: {string.Join(", ", DistTrainSettings.KnownKeys.Order(StringComparer.Ordinal))}.");
        }
        return layer;
    }

    private static IEnumerable<string> LeafKeys(string prefix, HoconValue value)
    {
        if (!value.IsObject()) { yield return prefix; yield break; }
        foreach (var (k, v) in value.GetObject().Items)
            foreach (var leaf in LeafKeys(prefix + "." + k, v)) yield return leaf;
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    private static string OverridesHocon(ClusterOverrides o, Config below)
    {
        var sb = new StringBuilder();
        if (o.SeedNodes is { } seeds)
        {
            foreach (var s in seeds)
                if (!(s.StartsWith("akka.tcp://", StringComparison.Ordinal) || s.StartsWith("akka.ssl.tcp://", StringComparison.Ordinal)) || !s.Contains('@'))
                    throw new ArgumentException($"Seed node '{s}' is not an Akka address; write it as akka.tcp://disttrain@HOST:PORT.");
            sb.AppendLine($"akka.cluster.seed-nodes = [{string.Join(", ", seeds.Select(Quote))}]");
        }
        if (o.Roles is { } roles)
        {
            foreach (var r in roles)
                if (!KnownRoles.Contains(r))
                    throw new ArgumentException($"Unknown role '{r}'; roles are {string.Join(", ", KnownRoles)} (comma-separated).");
            sb.AppendLine($"akka.cluster.roles = [{string.Join(", ", roles.Select(Quote))}]");
        }
        if (o.Hostname is { } host)
        {
            // The advertised address; bind it too unless the environment binds every interface.
            sb.AppendLine($"akka.remote.dot-netty.tcp.public-hostname = {Quote(host)}");
            if (below.GetString("akka.remote.dot-netty.tcp.hostname", "") != "0.0.0.0")
                sb.AppendLine($"akka.remote.dot-netty.tcp.hostname = {Quote(host)}");
            if (below.GetString("disttrain.data-plane.host", "") is "" or "127.0.0.1" or "0.0.0.0")
                sb.AppendLine($"disttrain.data-plane.host = {Quote(host)}");
        }
        if (o.Port is { } port)
        {
            if (port is < 0 or > 65535) throw new ArgumentException($"Port {port} is out of range; use 0..65535 (0 = any free port).");
            sb.AppendLine($"akka.remote.dot-netty.tcp.port = {port}");
        }
        if (o.DataPort is { } dataPort)
        {
            if (dataPort is < 0 or > 65535) throw new ArgumentException($"Data port {dataPort} is out of range; use 0..65535 (0 = any free port).");
            sb.AppendLine($"disttrain.data-plane.port = {dataPort}");
        }
        if (o.TlsCertificate is { } cert) sb.AppendLine($"disttrain.tls.certificate = {Quote(Path.GetFullPath(cert))}");
        if (o.TlsCa is { } ca) sb.AppendLine($"disttrain.tls.ca = {Quote(Path.GetFullPath(ca))}");
        if (o.Insecure is { } insecure) sb.AppendLine($"disttrain.tls.insecure = {(insecure ? "on" : "off")}");
        if (o.Hocon is { } extra) sb.AppendLine(extra);
        return sb.ToString();
    }
}
