// A stranger on the control plane of a cluster without TLS (local runs, --insecure): an ActorSystem of its own with our
// configuration, which completes Akka associations with the cluster's nodes and sends what a member never would —
// bytes of its choosing under our serializer's id (garbage, length bombs claiming 1e9 elements, a foreign type name,
// flipped bits, a payload above disttrain.max-message-bytes), a serializer id no node has, a manifest Akka's own
// serializer never wrote — and well-formed or malformed control messages of ours. It relies on Akka's serializer
// registry: a record type bound to a serializer whose ToBinary returns the forged bytes puts them on the wire as they are.
using System.Buffers.Binary;
using System.Text;
using Akka.Actor;
using Akka.Serialization;
using DistTrain.Cluster.Serialization;

namespace DistTrain.Cli.Tests.Support;

/// <summary>Bytes sent under our serializer's id (HyperionSerializer.Id), as if Hyperion had written them.</summary>
internal sealed record ForgedPayload(byte[] Bytes);

/// <summary>Bytes sent under a serializer id that no node has.</summary>
internal sealed record ForgedSerializerId(byte[] Bytes);

/// <summary>Bytes sent under the id of Akka's cluster-singleton serializer, with a manifest it never wrote.</summary>
internal sealed record ForgedManifest(byte[] Bytes, string Manifest);

/// <summary>Our serializer's id in the stranger's system: our messages as HyperionCodec writes them, forged payloads as given.</summary>
internal sealed class ForgingHyperionSerializer(ExtendedActorSystem system) : Serializer(system)
{
    private readonly HyperionCodec _codec = new(1 << 20);
    public override int Identifier => HyperionSerializer.Id;
    public override bool IncludeManifest => false;
    public override byte[] ToBinary(object obj) => obj is ForgedPayload f ? f.Bytes : _codec.Serialize(obj);
    public override object FromBinary(byte[] bytes, Type type) => _codec.Deserialize(bytes);
}

internal sealed class UnknownIdSerializer(ExtendedActorSystem system) : Serializer(system)
{
    public const int Id = 31_337;
    public override int Identifier => Id;
    public override bool IncludeManifest => false;
    public override byte[] ToBinary(object obj) => ((ForgedSerializerId)obj).Bytes;
    public override object FromBinary(byte[] bytes, Type type) => throw new NotSupportedException();
}

internal sealed class ForgedManifestSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>Akka.Cluster.Tools' ClusterSingletonMessageSerializer: every node with a singleton manager has it; the
    /// stranger's own system (remote provider, no singleton) does not use it.</summary>
    public const int Id = 14;
    public override int Identifier => Id;
    public override string Manifest(object o) => ((ForgedManifest)o).Manifest;
    public override byte[] ToBinary(object obj) => ((ForgedManifest)obj).Bytes;
    public override object FromBinary(byte[] bytes, string manifest) => throw new NotSupportedException();
}

internal static class ControlPlaneStranger
{
    /// <summary>HOCON that binds the forged records to their serializers (after ClusterConfig's, which binds our messages).</summary>
    public static string Hocon(bool member) => $$"""
        akka.actor.serializers {
          disttrain = "{{typeof(ForgingHyperionSerializer).AssemblyQualifiedName}}"
          forged-id = "{{typeof(UnknownIdSerializer).AssemblyQualifiedName}}"
          {{(member ? "" : $"forged-manifest = \"{typeof(ForgedManifestSerializer).AssemblyQualifiedName}\"")}}
        }
        akka.actor.serialization-bindings {
          "{{typeof(ForgedPayload).AssemblyQualifiedName}}" = disttrain
          "{{typeof(ForgedSerializerId).AssemblyQualifiedName}}" = forged-id
          {{(member ? "" : $"\"{typeof(ForgedManifest).AssemblyQualifiedName}\" = forged-manifest")}}
        }
        """;

    private static readonly HyperionCodec Codec = new();

    /// <summary>A valid payload of <paramref name="message"/> with the Int32 length written just before <paramref name="marker"/>
    /// replaced by <paramref name="claim"/>: a length bomb where Hyperion would allocate what the claim says.</summary>
    public static byte[] LengthBomb(object message, byte[] marker, int claim)
    {
        var bytes = Codec.Serialize(message);
        int at = bytes.AsSpan().IndexOf(marker);
        if (at < 4) throw new InvalidOperationException($"marker not found in the payload of {message.GetType().Name}");
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(at - 4), claim);
        return bytes;
    }

    /// <summary>Hyperion's full type manifest (255, Int32 length, UTF-8 name) naming <paramref name="typeName"/>, then <paramref name="tail"/>.</summary>
    public static byte[] TypeManifest(string typeName, int? claimedLength = null, int tail = 16)
    {
        var name = Encoding.UTF8.GetBytes(typeName);
        var b = new byte[5 + name.Length + tail];
        b[0] = 255;
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(1), claimedLength ?? name.Length);
        name.CopyTo(b, 5);
        return b;
    }

    public static byte[] Serialize(object message) => Codec.Serialize(message);
}
