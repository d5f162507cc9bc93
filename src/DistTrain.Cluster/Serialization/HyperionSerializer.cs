// Akka.NET serializer for our control messages (bound to IDistTrainMessage in cluster-config/base.hocon),
// a thin adapter over HyperionCodec: allow-listed types only, unsafe types disallowed, one clear error.
using Akka.Actor;
using System.Runtime.CompilerServices;
using Akka.Configuration;

namespace DistTrain.Cluster.Serialization;

public sealed class HyperionSerializer : Akka.Serialization.Serializer
{
    /// <summary>Serializer id on the wire; Akka reserves 0–40 for itself.</summary>
    public const int Id = 7411;

    private readonly HyperionCodec _codec;

    public HyperionSerializer(ExtendedActorSystem system) : this(system, ConfigurationFactory.Empty) { }

    public HyperionSerializer(ExtendedActorSystem system, Config config) : base(system)
    {
        // The limit comes from our own section, so one key governs both this and the data plane's control frames.
        var max = system.Settings.Config.GetInt("disttrain.max-message-bytes", 0);
        _codec = new HyperionCodec(max > 0 ? max : 4 * 1024 * 1024);
    }

    public override int Identifier => Id;

    /// <summary>Hyperion writes the type name itself, so Akka's manifest would only repeat it.</summary>
    public override bool IncludeManifest => false;

    public override byte[] ToBinary(object obj) => _lastWritten = _codec.Serialize(obj);

    // Messages this process read from another node: a remote sender that names no actor of its own (none, or one of this
    // node's) is a stranger's (MessageGate). Akka's serialize-messages check (tests) decodes the very array ToBinary just
    // returned on the same thread; remoting decodes a fresh one. Weak keys: an entry lives as long as its message.
    private static readonly ConditionalWeakTable<object, object?> FromWire = new();
    [ThreadStatic] private static byte[]? _lastWritten;

    /// <summary>True when <paramref name="message"/> was decoded from bytes another node sent (not a local message).</summary>
    public static bool CameOverTheWire(object message) => FromWire.TryGetValue(message, out _);

    public override object FromBinary(byte[] bytes, Type type)
    {
        bool localRoundTrip = ReferenceEquals(bytes, _lastWritten);
        _lastWritten = null;
        try
        {
            var message = _codec.Deserialize(bytes);
            if (!localRoundTrip) FromWire.AddOrUpdate(message, null);
            return message;
        }
        catch (System.Runtime.Serialization.SerializationException e)
        {
            // Akka logs this and drops the message; the count goes with it (disttrain_refused_messages, reason undecodable).
            long n = Telemetry.ControlRefusals.Count(Telemetry.RefusalReason.Undecodable);
            throw new System.Runtime.Serialization.SerializationException($"{e.Message} (undecodable control payload {n} in this process)", e);
        }
    }
}
