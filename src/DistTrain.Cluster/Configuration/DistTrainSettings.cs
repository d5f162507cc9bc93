// Typed view of the `disttrain { ... }` HOCON section (cluster-config/base.hocon documents each key),
// with the checks that make an impossible value a clear error.
using Akka.Configuration;

namespace DistTrain.Cluster.Configuration;

/// <param name="GradientChunkFloats">Sync mode: a worker sends a gradient part as soon as its layers' backward is done, in frames of
/// at least this many floats (the rest after the backward); 0 = the whole range after the backward.</param>
/// <param name="Limits">Connection count and timeouts of each listener (max-connections, hello-timeout, read-timeout, idle-timeout).</param>
public sealed record DataPlaneSettings(string Host, int Port, long MaxFrameBytes, int SocketBufferBytes, TimeSpan ConnectTimeout,
    int GradientChunkFloats = DistTrain.Cluster.Runtime.NodeEndpoints.DefaultGradientChunkFloats, DistTrain.Cluster.DataPlane.DataPlaneLimits? Limits = null);

public sealed record DistTrainSettings(
    string SystemName, int MaxMessageBytes, TimeSpan JoinTimeout, DataPlaneSettings DataPlane)
{
    /// <summary>Every key allowed under `disttrain`; anything else in a config file is an error.</summary>
    public static readonly HashSet<string> KnownKeys =
    [
        "disttrain.system-name", "disttrain.max-message-bytes", "disttrain.join-timeout",
        "disttrain.data-plane.host", "disttrain.data-plane.port", "disttrain.data-plane.max-frame-bytes",
        "disttrain.data-plane.socket-buffer-bytes", "disttrain.data-plane.connect-timeout", "disttrain.data-plane.gradient-chunk-floats",
        "disttrain.data-plane.max-connections", "disttrain.data-plane.hello-timeout", "disttrain.data-plane.read-timeout", "disttrain.data-plane.idle-timeout",
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
        var name = config.GetString("disttrain.system-name", "");
        if (string.IsNullOrWhiteSpace(name) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new ArgumentException($"disttrain.system-name = '{name}' must be letters, digits, '-' or '_'.");

        return new DistTrainSettings(name, maxMessage, join, new DataPlaneSettings(dpHost, dpPort, maxFrame, buffer, connect, chunk, limits));
    }

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
