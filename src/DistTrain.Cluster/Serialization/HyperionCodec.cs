// Hyperion 0.12.2 encoding of our control messages, usable without an ActorSystem. Two instances:
// Hyperion's TypeFilter stores short assembly-qualified names but Serialize checks the long form, so
// a filtered instance cannot write (ANCHORS.md pitfall 1): write unfiltered, read filtered. Every payload is walked by
// HyperionPayloadGuard before the reading instance sees it (lengths within the payload, our types where they are declared).
using System.Runtime.Serialization;
using Hyperion;

namespace DistTrain.Cluster.Serialization;

public sealed class HyperionCodec
{
    private readonly Hyperion.Serializer _writer;
    private readonly Hyperion.Serializer _reader;

    /// <param name="maxBytes">Largest payload accepted either way; a larger one is refused before Hyperion sees it.</param>
    public HyperionCodec(int maxBytes = 4 * 1024 * 1024)
    {
        if (maxBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxBytes), maxBytes, "max message bytes must be positive (disttrain.max-message-bytes).");
        MaxBytes = maxBytes;
        _writer = new Hyperion.Serializer(new SerializerOptions(
            versionTolerance: false, preserveObjectReferences: false, surrogates: null, serializerFactories: null,
            knownTypes: null, ignoreISerializable: true, packageNameOverrides: null, disallowUnsafeTypes: true,
            typeFilter: DisabledTypeFilter.Instance));
        var filter = TypeFilterBuilder.Create();
        foreach (var t in MessageTypes.Allowed) filter = filter.Include(t);
        _reader = new Hyperion.Serializer(new SerializerOptions(
            versionTolerance: false, preserveObjectReferences: false, surrogates: null, serializerFactories: null,
            knownTypes: null, ignoreISerializable: true, packageNameOverrides: null, disallowUnsafeTypes: true,
            typeFilter: filter.Build()));
    }

    public int MaxBytes { get; }

    /// <summary>Encodes one of our messages; anything else is refused with a <see cref="SerializationException"/>.</summary>
    public byte[] Serialize(object message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!MessageTypes.IsMessage(message.GetType()))
            throw new SerializationException(
                $"DistTrain serializer: {message.GetType().FullName} is not a DistTrain message (implement IDistTrainMessage in DistTrain.Cluster.Messages, or bind it to another serializer).");
        byte[] bytes;
        try
        {
            using var ms = new MemoryStream();
            _writer.Serialize(message, ms);
            bytes = ms.ToArray();
        }
        catch (Exception e)
        {
            throw new SerializationException($"DistTrain serializer: could not encode {message.GetType().Name}: {e.Message}", e);
        }
        if (bytes.Length > MaxBytes)
            throw new SerializationException(
                $"DistTrain serializer: {message.GetType().Name} encodes to {bytes.Length} bytes, above the limit of {MaxBytes} (disttrain.max-message-bytes); send tensors over the data plane.");
        return bytes;
    }

    /// <summary>Decodes bytes from a peer; every failure (garbage, a foreign type, trailing bytes) is one <see cref="SerializationException"/>.</summary>
    public object Deserialize(ReadOnlySpan<byte> bytes) => Deserialize(bytes.ToArray());

    /// <inheritdoc cref="Deserialize(ReadOnlySpan{byte})"/>
    public object Deserialize(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length == 0) throw new SerializationException("DistTrain serializer: empty payload, expected a DistTrain message.");
        if (bytes.Length > MaxBytes)
            throw new SerializationException($"DistTrain serializer: payload of {bytes.Length} bytes is above the limit of {MaxBytes} (disttrain.max-message-bytes).");
        // Hyperion allocates whatever a length prefix claims before reading the bytes: walk the payload first.
        HyperionPayloadGuard.Check(bytes);
        object? result;
        long consumed;
        try
        {
            using var ms = new MemoryStream(bytes, writable: false);
            result = _reader.Deserialize(ms);
            consumed = ms.Position;
        }
        catch (Exception e)
        {
            throw new SerializationException($"DistTrain serializer: payload of {bytes.Length} bytes is not a valid DistTrain message ({e.GetType().Name}: {e.Message}).", e);
        }
        if (result is null || !MessageTypes.IsMessage(result.GetType()))
            throw new SerializationException(
                $"DistTrain serializer: payload decoded to {result?.GetType().FullName ?? "null"}, which is not a DistTrain message; refused.");
        if (consumed != bytes.Length)
            throw new SerializationException($"DistTrain serializer: {bytes.Length - consumed} trailing bytes after a {result.GetType().Name}; refused.");
        return result;
    }
}
