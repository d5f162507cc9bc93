// Walks a Hyperion 0.12.2 payload before Hyperion reads it and refuses it unless every length it claims fits in the
// bytes that follow and every type it names is one of ours, where the message declares that type. Hyperion allocates
// what a length prefix claims before it reads the bytes (a type name, a string, a byte[], an array: a 5-byte claim asks
// for 2 GB), and it follows any allow-listed type anywhere in the graph (a ShardLayout where a ShardInfo belongs, nested
// until the stack runs out). After this walk nothing Hyperion allocates for a payload is larger than the payload times
// an element's size, and nesting is bounded by our message types (none contains itself).
// It reads what HyperionCodec writes: no version tolerance, no object references, no known types. Field order and wire
// sizes follow Hyperion 0.12.2 (ReflectionEx.GetFieldInfosForType, the *Serializer.Manifest bytes, StreamEx.ReadString);
// a change of Hyperion's version shows first in SerializerTests, which round-trips every message through this walk.
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Reflection;
using System.Runtime.Serialization;
using System.Text;

namespace DistTrain.Cluster.Serialization;

public static class HyperionPayloadGuard
{
    /// <summary>Deepest nesting of objects a payload may have (our deepest message, ShardAssignment, has 4 levels).</summary>
    public const int MaxDepth = 16;

    /// <summary>Longest type name a payload may carry (ours are under 100 bytes).</summary>
    public const int MaxTypeNameBytes = 512;

    // Hyperion's manifest bytes (ValueSerializers/*.cs, ObjectSerializer, ConsistentArraySerializer).
    private const byte NullManifest = 0, ByteArrayManifest = 9, StringManifest = 7, ConsistentArray = 252, ObjectReference = 253,
        ManifestIndex = 254, ManifestFull = 255;

    // Primitive manifests and their wire sizes; 0 = a string (length-prefixed). Others (DateTime, decimal, Guid, Type, object)
    // appear in none of our messages and are refused.
    private static readonly FrozenDictionary<byte, (Type Type, int Size)> Primitives = new Dictionary<byte, (Type, int)>
    {
        [2] = (typeof(long), 8), [3] = (typeof(short), 2), [4] = (typeof(byte), 1), [6] = (typeof(bool), 1), [StringManifest] = (typeof(string), 0),
        [8] = (typeof(int), 4), [12] = (typeof(float), 4), [13] = (typeof(double), 8), [15] = (typeof(char), 2), [17] = (typeof(ushort), 2),
        [18] = (typeof(uint), 4), [19] = (typeof(ulong), 8), [20] = (typeof(sbyte), 1),
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<Type, int> InlineSizes = Primitives.Values.ToFrozenDictionary(p => p.Type, p => p.Size);

    // The names Hyperion writes for our types: the assembly-qualified name without version, culture and key.
    private static readonly FrozenDictionary<string, Type> Names = MessageTypes.Allowed
        .Where(t => t.Assembly == typeof(MessageTypes).Assembly)
        .ToFrozenDictionary(t => $"{t.FullName}, {t.Assembly.GetName().Name}", StringComparer.Ordinal);

    private static readonly ConcurrentDictionary<Type, FieldInfo[]> FieldsOf = new();

    /// <summary>Throws a <see cref="SerializationException"/> naming the first thing in <paramref name="payload"/> that is
    /// not a well-formed DistTrain message; returns without allocating more than a few small objects otherwise.</summary>
    public static void Check(ReadOnlySpan<byte> payload)
    {
        var r = new Reader(payload);
        var types = new List<Type>(4);
        var root = Object(ref r, typeof(IDistTrainMessageRoot), types, 0);
        if (root is null) throw Refuse(r, "the payload is null, not a DistTrain message");
    }

    // Marks the root: any message type may stand there.
    private interface IDistTrainMessageRoot;

    private static Type? Object(ref Reader r, Type declared, List<Type> types, int depth)
    {
        if (depth > MaxDepth) throw Refuse(r, $"objects nested deeper than {MaxDepth}");
        int at = r.Position;
        byte m = r.Byte();
        switch (m)
        {
            case NullManifest:
                if (declared.IsValueType) throw Refuse(r, $"null where a {declared.Name} belongs", at);
                return null;
            case ByteArrayManifest:
                Expect(r, declared, typeof(byte[]), at);
                r.Skip(r.Length("a byte array", 1));
                return typeof(byte[]);
            case ConsistentArray:
            {
                int em = r.Position;
                if (!Primitives.TryGetValue(r.Byte(), out var element)) throw Refuse(r, "an array of a type our messages do not use", em);
                var type = element.Type.MakeArrayType();
                Expect(r, declared, type, at);
                int n = r.Length($"a {element.Type.Name}[]", Math.Max(1, element.Size));
                if (element.Size > 0) r.Skip(n * element.Size);
                else for (int i = 0; i < n; i++) r.String();
                return type;
            }
            case ManifestFull:
            {
                int n = r.Length("a type name", 1);
                if (n > MaxTypeNameBytes) throw Refuse(r, $"a type name of {n} bytes (at most {MaxTypeNameBytes})", at);
                var name = r.Utf8(n);
                if (!Names.TryGetValue(name, out var type)) throw Refuse(r, $"type '{Shorten(name)}' is not a DistTrain message type", at);
                types.Add(type);
                return Value(ref r, declared, type, types, depth, at);
            }
            case ManifestIndex:
            {
                int id = r.UInt16();
                if (id >= types.Count) throw Refuse(r, $"type index {id} but only {types.Count} types were named before it", at);
                return Value(ref r, declared, types[id], types, depth, at);
            }
            case ObjectReference:
                throw Refuse(r, "an object reference (our messages are written without them)", at);
            default:
                if (Primitives.TryGetValue(m, out var p))
                {
                    Expect(r, declared, p.Type, at);
                    if (p.Size > 0) r.Skip(p.Size);
                    else r.String();
                    return p.Type;
                }
                throw Refuse(r, $"manifest byte {m}, which our messages do not use", at);
        }
    }

    private static Type Value(ref Reader r, Type declared, Type type, List<Type> types, int depth, int at)
    {
        Expect(r, declared, type, at);
        if (type.IsArray)
        {
            var element = type.GetElementType()!;
            int n = r.Length($"a {element.Name}[]", 1); // every element takes at least its manifest byte
            for (int i = 0; i < n; i++) Object(ref r, element, types, depth + 1);
            return type;
        }
        foreach (var f in FieldsOf.GetOrAdd(type, Fields))
        {
            if (InlineSizes.TryGetValue(f.FieldType, out int size))
            {
                if (size > 0) r.Skip(size);
                else r.String();
            }
            else Object(ref r, f.FieldType, types, depth + 1);
        }
        return type;
    }

    private static void Expect(in Reader r, Type declared, Type found, int at)
    {
        if (declared == typeof(IDistTrainMessageRoot))
        {
            if (!MessageTypes.IsMessage(found)) throw Refuse(r, $"the payload starts with a {found.Name}, not a DistTrain message", at);
        }
        else if (!declared.IsAssignableFrom(found))
            throw Refuse(r, $"a {found.Name} where the message declares a {declared.Name}", at);
    }

    // Hyperion's field order: every instance field up the base chain (IntPtr fields and [Ignore] aside; ours have none),
    // sorted by ordinal name.
    private static FieldInfo[] Fields(Type type)
    {
        var fields = new List<FieldInfo>();
        for (var t = type; t is not null; t = t.BaseType)
            fields.AddRange(t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                .Where(f => f.FieldType != typeof(IntPtr) && f.FieldType != typeof(UIntPtr) && f.Name != "_syncRoot"));
        return fields.OrderBy(f => f.Name, StringComparer.Ordinal).ToArray();
    }

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..80] + "...";

    private static SerializationException Refuse(in Reader r, string what, int at = -1) =>
        new($"DistTrain serializer: refused a payload of {r.Total} bytes at byte {(at >= 0 ? at : r.Position)}: {what}.");

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        public int Position { get; private set; }
        public readonly int Total => _bytes.Length;
        private readonly int Remaining => _bytes.Length - Position;

        public byte Byte()
        {
            Need(1, "a manifest byte");
            return _bytes[Position++];
        }

        public int UInt16()
        {
            Need(2, "a type index");
            int v = BinaryPrimitives.ReadUInt16LittleEndian(_bytes[Position..]);
            Position += 2;
            return v;
        }

        /// <summary>A length prefix (Int32) that must fit in what follows at <paramref name="minBytesEach"/> bytes per unit.</summary>
        public int Length(string what, int minBytesEach)
        {
            int at = Position;
            Need(4, $"the length of {what}");
            int n = BinaryPrimitives.ReadInt32LittleEndian(_bytes[Position..]);
            Position += 4;
            if (n < 0 || (long)n * minBytesEach > Remaining)
                throw Refuse(this, $"{what} claims length {n} but only {Remaining} bytes follow", at);
            return n;
        }

        /// <summary>Hyperion's string: a byte 0 (null), 1..254 (length + 1) or 255 followed by an Int32 length.</summary>
        public void String()
        {
            int at = Position;
            Need(1, "a string's length");
            int b = _bytes[Position++];
            if (b == 0) return;
            int n = b == 255 ? Length("a string", 1) : b - 1;
            if (n > Remaining) throw Refuse(this, $"a string claims {n} bytes but only {Remaining} follow", at);
            Position += n;
        }

        public string Utf8(int n)
        {
            var s = Encoding.UTF8.GetString(_bytes.Slice(Position, n));
            Position += n;
            return s;
        }

        public void Skip(int n)
        {
            Need(n, "a value");
            Position += n;
        }

        private readonly void Need(int n, string what)
        {
            if (n > Remaining) throw Refuse(this, $"the payload ends inside {what} ({n} bytes needed, {Remaining} left)");
        }
    }
}
