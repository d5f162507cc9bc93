// Loads every file in cluster-config/ and checks the effective values (STYLE.md 15): the serializer
// binding, the split-brain resolver keyed on the coordinator role, timings per environment, our
// `disttrain` section; unknown keys, impossible values and bad overrides fail with clear errors.
using Akka.Configuration;
using DistTrain.Cluster.Configuration;
using Xunit;

namespace DistTrain.Cluster.Tests;

public sealed class ClusterConfigTests
{
    private static string ConfigDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DistTrain.sln")))
                return Path.Combine(dir.FullName, "cluster-config");
        throw new InvalidOperationException("repository root (DistTrain.sln) not found above " + AppContext.BaseDirectory);
    }

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(ConfigDirectory(), "*.hocon").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    [Fact]
    public void The_folder_holds_base_and_every_environment_and_the_assembly_embeds_the_same_text()
    {
        var names = Directory.GetFiles(ConfigDirectory(), "*.hocon").Select(f => Path.GetFileNameWithoutExtension(f)).Order().ToArray();
        Assert.Equal(new[] { "base" }.Concat(ClusterConfig.Environments.Order()).ToArray(), names);
        foreach (var name in names)
            Assert.Equal(File.ReadAllText(Path.Combine(ConfigDirectory(), name + ".hocon")), ClusterConfig.ReadSource(name));
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Every_key_in_every_file_carries_a_comment(string file)
    {
        var lines = File.ReadAllLines(Path.Combine(ConfigDirectory(), file));
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#') || line.StartsWith('}') || line.StartsWith('"') || !line.Contains('=')) continue;
            var previous = i > 0 ? lines[i - 1].Trim() : "";
            Assert.True(previous.StartsWith('#'), $"{file}:{i + 1} '{line}' has no comment above it");
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Every_file_loads_and_yields_valid_settings(string file)
    {
        var env = Path.GetFileNameWithoutExtension(file);
        // multinode binds 0.0.0.0 and needs the address to advertise; a reachable node needs TLS or --insecure (TlsConfigTests).
        var overrides = new ClusterOverrides { Hostname = "10.1.2.3", Insecure = true };
        var config = env == "base"
            ? ClusterConfig.Parse(file, ClusterConfig.ReadSource("base"))
            : ClusterConfig.Load(env, overrides, ConfigDirectory());
        var settings = DistTrainSettings.From(config);

        Assert.Equal("disttrain", settings.SystemName);
        Assert.Equal("cluster", config.GetString("akka.actor.provider"));
        Assert.Equal("DistTrain.Cluster.Serialization.HyperionSerializer, DistTrain.Cluster", config.GetString("akka.actor.serializers.disttrain"));
        Assert.Equal("disttrain", config.GetConfig("akka.actor.serialization-bindings").GetString("\"DistTrain.Cluster.Messages.IDistTrainMessage, DistTrain.Cluster\""));
        Assert.Equal("keep-majority", config.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.Equal("coordinator", config.GetString("akka.cluster.split-brain-resolver.keep-majority.role"));
        Assert.Contains("SplitBrainResolverProvider", config.GetString("akka.cluster.downing-provider-class"));
        Assert.Equal(128000, config.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size"));
        Assert.True(settings.MaxMessageBytes < 128000);
        Assert.Equal("coordinator", config.GetString("akka.cluster.singleton.role"));
        Assert.Equal(256L << 20, settings.DataPlane.MaxFrameBytes);
        Assert.Equal(TimeSpan.FromMilliseconds(100), config.GetTimeSpan("akka.scheduler.tick-duration", null, false));

        var (stableAfter, pause, join, dataHost, dataPort, socketBuffer) = env switch
        {
            "base" => (20, 3, 30, "127.0.0.1", 0, 256 << 10),
            "local" => (5, 3, 60, "10.1.2.3", 0, 256 << 10),
            "multinode" => (20, 6, 60, "10.1.2.3", 4060, 8 << 20),
            _ => throw new InvalidOperationException($"new file {file}: add its expected values to this test"),
        };
        Assert.Equal(TimeSpan.FromSeconds(stableAfter), config.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after", null, false));
        Assert.Equal(TimeSpan.FromSeconds(pause), config.GetTimeSpan("akka.cluster.failure-detector.acceptable-heartbeat-pause", null, false));
        Assert.Equal(TimeSpan.FromSeconds(join), settings.JoinTimeout);
        Assert.Equal(dataHost, settings.DataPlane.Host);
        Assert.Equal(dataPort, settings.DataPlane.Port);
        Assert.Equal(socketBuffer, settings.DataPlane.SocketBufferBytes);
        // Every environment keeps the data plane's bounds (base.hocon documents why).
        Assert.Equal(new DistTrain.Cluster.DataPlane.DataPlaneLimits
        {
            MaxConnections = 256, HelloTimeout = TimeSpan.FromSeconds(10), ReadTimeout = TimeSpan.FromSeconds(5), IdleTimeout = TimeSpan.Zero,
        }, settings.DataPlane.Limits);
        // Leases and orphaned nodes (base.hocon documents why).
        Assert.Equal((TimeSpan.FromSeconds(1), 4.0, TimeSpan.FromSeconds(30)), (settings.LeaseFloor, settings.LeaseStepMultiple, settings.CoordinatorLostTimeout));
    }

    [Fact]
    public void Overrides_set_seed_nodes_hostname_port_and_roles()
    {
        var config = ClusterConfig.Load("local", new ClusterOverrides
        {
            SeedNodes = ["akka.tcp://disttrain@127.0.0.1:4053"], Hostname = "127.0.0.2", Port = 4055, Roles = ["ps", "worker"], DataPort = 4070,
        });
        Assert.Equal(["akka.tcp://disttrain@127.0.0.1:4053"], config.GetStringList("akka.cluster.seed-nodes"));
        Assert.Equal(["ps", "worker"], config.GetStringList("akka.cluster.roles"));
        Assert.Equal("127.0.0.2", config.GetString("akka.remote.dot-netty.tcp.hostname"));
        Assert.Equal("127.0.0.2", config.GetString("akka.remote.dot-netty.tcp.public-hostname"));
        Assert.Equal(4055, config.GetInt("akka.remote.dot-netty.tcp.port"));
        Assert.Equal(4070, DistTrainSettings.From(config).DataPlane.Port);
    }

    [Fact]
    public void Multinode_binds_every_interface_and_advertises_the_given_hostname()
    {
        var config = ClusterConfig.Load("multinode", new ClusterOverrides { Hostname = "10.0.0.5", Insecure = true });
        Assert.Equal("0.0.0.0", config.GetString("akka.remote.dot-netty.tcp.hostname"));
        Assert.Equal("10.0.0.5", config.GetString("akka.remote.dot-netty.tcp.public-hostname"));
        Assert.Equal(4053, config.GetInt("akka.remote.dot-netty.tcp.port"));
    }

    [Fact]
    public void The_data_plane_advertises_its_public_host_when_given_and_its_bound_host_otherwise()
    {
        var plain = DistTrainSettings.From(ClusterConfig.Load("local", new ClusterOverrides { Hostname = "127.0.0.1" }));
        Assert.Null(plain.DataPlane.PublicHost);
        var relayed = DistTrainSettings.From(ClusterConfig.Load("local", new ClusterOverrides
        {
            Hostname = "127.0.0.1", Hocon = "disttrain.data-plane.public-host = \"127.0.0.2\"",
        }));
        Assert.Equal("127.0.0.1", relayed.DataPlane.Host);
        Assert.Equal("127.0.0.2", relayed.DataPlane.PublicHost);
    }

    [Fact]
    public void Environment_variables_become_overrides_and_flags_win()
    {
        var env = new Dictionary<string, string>
        {
            ["DISTTRAIN_SEED_NODES"] = "akka.tcp://disttrain@a:1, akka.tcp://disttrain@b:2",
            ["DISTTRAIN_ROLES"] = "worker", ["DISTTRAIN_PORT"] = "4100", ["DISTTRAIN_HOSTNAME"] = "h1",
        };
        var fromEnv = ClusterOverrides.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal(new[] { "akka.tcp://disttrain@a:1", "akka.tcp://disttrain@b:2" }, fromEnv.SeedNodes);
        var merged = new ClusterOverrides { Port = 4200 }.Over(fromEnv);
        Assert.Equal((4200, "h1", "worker"), (merged.Port!.Value, merged.Hostname, merged.Roles!.Single()));
        Assert.Throws<ArgumentException>(() => ClusterOverrides.FromEnvironment(k => k == "DISTTRAIN_PORT" ? "abc" : null));
    }

    [Theory]
    [InlineData("disttrain.data-plane.prot = 4000", "disttrain.data-plane.prot")]
    [InlineData("disttrain { max-mesage-bytes = 10 }", "disttrain.max-mesage-bytes")]
    [InlineData("disttrain.workers = 3", "disttrain.workers")]
    public void An_unknown_key_in_our_section_is_a_clear_error(string hocon, string key)
    {
        var e = Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", new ClusterOverrides { Hocon = hocon }));
        Assert.Contains($"unknown key '{key}'", e.Message);
        Assert.Contains("disttrain.data-plane.port", e.Message); // lists the known keys
    }

    [Fact]
    public void An_unknown_key_in_an_environment_file_names_the_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"disttrain-bad-{Guid.NewGuid():N}.hocon");
        File.WriteAllText(path, "# typo\ndisttrain.join-timout = 5s\n");
        try
        {
            var e = Assert.Throws<ArgumentException>(() => ClusterConfig.Load(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("disttrain.join-timout", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData("disttrain.max-message-bytes = 200000", "maximum-frame-size")]
    [InlineData("disttrain.data-plane.port = 70000", "data-plane.port")]
    [InlineData("disttrain.data-plane.socket-buffer-bytes = 100", "socket-buffer-bytes")]
    [InlineData("disttrain.data-plane.gradient-chunk-floats = -1", "gradient-chunk-floats")]
    [InlineData("disttrain.protocol-version = 3", "unknown key 'disttrain.protocol-version'")] // the build's, not a setting (WireProtocol.Version)
    [InlineData("disttrain.system-name = \"a b\"", "system-name")]
    // Values of the wrong type name their key too.
    [InlineData("disttrain.data-plane.port = \"abc\"", "disttrain.data-plane.port = 'abc' is not an integer port")]
    [InlineData("disttrain.data-plane.connect-timeout = soon", "disttrain.data-plane.connect-timeout")]
    [InlineData("disttrain.join-timeout = \"x\"", "disttrain.join-timeout")]
    [InlineData("disttrain.data-plane.socket-buffer-bytes = lots", "disttrain.data-plane.socket-buffer-bytes")]
    [InlineData("disttrain.data-plane.max-connections = 0", "disttrain.data-plane.max-connections = 0 must be at least 1")]
    [InlineData("disttrain.data-plane.max-connections = many", "disttrain.data-plane.max-connections = 'many' is not an integer")]
    [InlineData("disttrain.data-plane.hello-timeout = 0s", "disttrain.data-plane.hello-timeout")]
    [InlineData("disttrain.data-plane.read-timeout = -1s", "disttrain.data-plane.read-timeout")]
    [InlineData("disttrain.data-plane.read-timeout = later", "disttrain.data-plane.read-timeout")]
    [InlineData("disttrain.data-plane.idle-timeout = -5s", "disttrain.data-plane.idle-timeout")]
    public void An_impossible_value_is_a_clear_error(string hocon, string mention)
    {
        var e = Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", new ClusterOverrides { Hocon = hocon }));
        Assert.Contains(mention, e.Message);
    }

    [Fact]
    public void Bad_overrides_are_clear_errors()
    {
        Assert.Contains("roles are", Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", new ClusterOverrides { Roles = ["gpu"] })).Message);
        Assert.Contains("akka.tcp://", Assert.Throws<ArgumentException>(() => ClusterConfig.Load("local", new ClusterOverrides { SeedNodes = ["127.0.0.1:4053"] })).Message);
        Assert.Contains("--hostname", Assert.Throws<ArgumentException>(() => ClusterConfig.Load("multinode")).Message);
        Assert.Contains("Unknown cluster environment", Assert.Throws<ArgumentException>(() => ClusterConfig.Load("prod")).Message);
    }
}
