// Akka.NET serializer for our control messages (bound to IDistTrainMessage in cluster-config/base.hocon),
// a thin adapter over HyperionCodec: allow-listed types only, unsafe types disallowed, one clear error.
using Akka.Actor;
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

    public override byte[] ToBinary(object obj) => _codec.Serialize(obj);

    public override object FromBinary(byte[] bytes, Type type)
    {
        try { return _codec.Deserialize(bytes); }
        catch (System.Runtime.Serialization.SerializationException e)
        {
            // Akka logs this and drops the message; the count goes with it (disttrain_refused_messages, reason undecodable).
            long n = Telemetry.ControlRefusals.Count(Telemetry.RefusalReason.Undecodable);
            throw new System.Runtime.Serialization.SerializationException($"{e.Message} (undecodable control payload {n} in this process)", e);
        }
    }
}
