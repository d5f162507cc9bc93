// safetensors files (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets [begin, end)}, "__metadata__": {string: string}}
// padded with spaces to a multiple of 8, then raw little-endian data. We write F32 tensors in the order
// given (model order, so the data section follows the flat buffers) and read F32 and the common
// numeric dtypes (converted to float), checking everything the format defines.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace DistTrain.Nn.Checkpoints;

/// <summary>One tensor read from a file; <see cref="DType"/> is as stored, <see cref="Data"/> is float32.</summary>
public sealed record SafeTensor(string Name, string DType, int[] Shape, float[] Data);

/// <summary>A parsed safetensors file: its tensors in data-offset order, by name, and its metadata.</summary>
public sealed class SafeTensorsFile
{
    private readonly Dictionary<string, SafeTensor> _byName;

    internal SafeTensorsFile(string path, IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string> metadata, bool verified)
    {
        Path = path;
        Tensors = tensors;
        Metadata = metadata;
        ChecksumVerified = verified;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public string Path { get; }
    public IReadOnlyList<SafeTensor> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>True when a SHA-256 manifest was beside the file and matched.</summary>
    public bool ChecksumVerified { get; }
    public IEnumerable<string> Names => Tensors.Select(t => t.Name);

    public SafeTensor this[string name] => _byName.TryGetValue(name, out var t) ? t
        : throw new CheckpointException(Path, $"has no tensor named '{name}'; it has {string.Join(", ", Names)}.");

    public bool TryGet(string name, out SafeTensor tensor) => _byName.TryGetValue(name, out tensor!);
}

public static class SafeTensors
{
    /// <summary>The largest header we accept (the reference implementation's limit).</summary>
    public const long MaxHeaderSize = 100_000_000;

    // dtype -> element size; the ones we convert to float on read. Other dtypes of the format are named
    // as unsupported, anything else as unknown.
    private static readonly Dictionary<string, int> Supported = new(StringComparer.Ordinal)
    { ["F32"] = 4, ["F64"] = 8, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4 };
    private static readonly HashSet<string> KnownOther = new(StringComparer.Ordinal)
    { "BOOL", "U8", "I8", "I16", "U16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64" };

    /// <summary>Writes the tensors atomically to <paramref name="path"/> with a SHA-256 manifest beside it.</summary>
    public static void Write(string path, IEnumerable<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> tensors,
        IDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList(); // validate before anything touches the disk
        Validate(list, metadata);
        AtomicFile.WriteWithManifest(path, s => WriteUnchecked(s, list, metadata));
    }

    /// <summary>Writes the safetensors bytes to a stream (no atomicity, no manifest).</summary>
    public static void Write(Stream stream, IEnumerable<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> tensors,
        IDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        Validate(list, metadata);
        WriteUnchecked(stream, list, metadata);
    }

    /// <summary>Reads and validates a file; verifies the SHA-256 manifest when there is one.</summary>
    public static SafeTensorsFile Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, $"cannot be read ({e.Message}).", e);
        }
        var verified = AtomicFile.VerifyManifest(path, bytes);
        return Parse(bytes, path, verified);
    }

    /// <summary>Parses safetensors bytes; <paramref name="path"/> names the source in errors.</summary>
    public static SafeTensorsFile Parse(ReadOnlySpan<byte> bytes, string path) => Parse(bytes, path, false);

    private static void Validate(List<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> list, IDictionary<string, string>? metadata)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape, data) in list)
        {
            if (string.IsNullOrEmpty(name) || name == "__metadata__")
                throw new ArgumentException($"A tensor name must be non-empty and not '__metadata__' (got '{name}').", nameof(list));
            if (!seen.Add(name)) throw new ArgumentException($"Tensor name '{name}' appears twice.", nameof(list));
            long n = 1;
            foreach (var d in shape) n = d < 0 ? -1 : n * d;
            if (n != data.Length)
                throw new ArgumentException($"Tensor '{name}': shape ({string.Join(",", shape)}) holds {n} elements but the data has {data.Length}.", nameof(list));
        }
        if (metadata is not null)
            foreach (var kv in metadata)
                if (kv.Value is null) throw new ArgumentException($"Metadata '{kv.Key}' has a null value.", nameof(metadata));
    }

    private static void WriteUnchecked(Stream stream, List<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> list, IDictionary<string, string>? metadata)
    {
        using var json = new MemoryStream();
        // Relaxed escaping keeps a model spec in the metadata readable (still valid JSON; we never embed it in HTML).
        using (var w = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var kv in metadata) w.WriteString(kv.Key, kv.Value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, shape, data) in list)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", "F32");
                w.WriteStartArray("shape");
                foreach (var d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset += 4L * data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        var header = json.ToArray();
        var padded = (header.Length + 7) / 8 * 8; // the reference writer pads with spaces to 8 bytes
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        stream.Write(len);
        stream.Write(header);
        for (int i = header.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var (_, _, data) in list) WriteFloats(stream, data.Span);
        stream.Flush();
    }

    private static void WriteFloats(Stream stream, ReadOnlySpan<float> data)
    {
        if (BitConverter.IsLittleEndian) { stream.Write(MemoryMarshal.AsBytes(data)); return; }
        Span<byte> b = stackalloc byte[4];
        foreach (var x in data) { BinaryPrimitives.WriteSingleLittleEndian(b, x); stream.Write(b); }
    }

    private static SafeTensorsFile Parse(ReadOnlySpan<byte> bytes, string path, bool verified)
    {
        CheckpointException Fail(string problem) => new(path, problem);
        if (bytes.Length < 8) throw Fail($"is {bytes.Length} bytes, too short for the 8-byte header length; the file is truncated or not safetensors.");
        var n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > MaxHeaderSize) throw Fail($"header size {n} is absurd (the limit is {MaxHeaderSize} bytes); the file is not safetensors or is corrupt.");
        if (8 + (long)n > bytes.Length) throw Fail($"header size {n} is larger than the file ({bytes.Length} bytes); the file is truncated.");
        var dataLength = bytes.Length - 8 - (long)n;

        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes.Slice(8, (int)n).ToArray()); }
        catch (JsonException e) { throw Fail($"header is not valid JSON ({e.Message})."); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Fail("header JSON is not an object.");

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<(string Name, string DType, int[] Shape, long Begin, long End)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (!names.Add(prop.Name)) throw Fail($"header names '{prop.Name}' twice.");
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw Fail("__metadata__ is not an object of strings.");
                foreach (var m in prop.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()!
                        : throw Fail($"__metadata__ value '{m.Name}' is not a string.");
                continue;
            }
            entries.Add(ParseEntry(prop, Fail, dataLength));
        }

        // Offsets must tile the data section exactly: sorted by begin, each begins where the last ended,
        // the last ends at the end of the file.
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long cursor = 0;
        string? previous = null;
        foreach (var e in entries)
        {
            if (e.Begin > cursor)
                throw Fail($"data offsets are not contiguous: bytes [{cursor}, {e.Begin}) before tensor '{e.Name}' belong to no tensor.");
            if (e.Begin < cursor)
                throw Fail($"tensor '{e.Name}' (data_offsets [{e.Begin}, {e.End}]) overlaps tensor '{previous}', which ends at {cursor}.");
            cursor = e.End;
            previous = e.Name;
        }
        if (cursor > dataLength)
            throw Fail($"tensor '{previous}' ends at data offset {cursor}, past the end of the file (the data section has {dataLength} bytes); the file is truncated.");
        if (cursor < dataLength)
            throw Fail($"the data does not end at the file end: {dataLength - cursor} bytes follow the last tensor.");

        var data = bytes.Slice(8 + (int)n);
        var tensors = new List<SafeTensor>(entries.Count);
        foreach (var e in entries) tensors.Add(new SafeTensor(e.Name, e.DType, e.Shape, Convert(data[(int)e.Begin..(int)e.End], e.DType)));
        return new SafeTensorsFile(path, tensors, metadata, verified);
    }

    private static (string, string, int[], long, long) ParseEntry(JsonProperty prop, Func<string, CheckpointException> fail, long dataLength)
    {
        var name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw fail($"header entry '{name}' is not an object.");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw fail($"tensor '{name}' has no dtype string.");
        var dtype = dt.GetString()!;
        if (!Supported.TryGetValue(dtype, out var size))
            throw fail(KnownOther.Contains(dtype)
                ? $"tensor '{name}' has dtype {dtype}, which this reader does not convert (supported: {string.Join(", ", Supported.Keys)})."
                : $"tensor '{name}' has unknown dtype '{dtype}' (supported: {string.Join(", ", Supported.Keys)}).");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw fail($"tensor '{name}' has no shape array.");
        var shape = new int[sh.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out var di) || di < 0)
                throw fail($"tensor '{name}' has a shape entry that is not a non-negative integer: {d.GetRawText()}.");
            shape[i++] = di;
            count = Math.Min(count * di, long.MaxValue / 16); // saturate: compared with a byte count below
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw fail($"tensor '{name}' has no data_offsets pair [begin, end].");
        long begin = Offset(off[0]), end = Offset(off[1]);
        if (end < begin) throw fail($"tensor '{name}' has data_offsets [{begin}, {end}] out of order (end before begin).");
        if (end - begin != count * size)
            throw fail($"tensor '{name}': data_offsets [{begin}, {end}] hold {end - begin} bytes but shape ({string.Join(",", shape)}) of {dtype} needs {count * size}.");
        if (end > dataLength)
            throw fail($"tensor '{name}' ends at data offset {end}, past the end of the file (the data section has {dataLength} bytes); the file is truncated.");
        return (name, dtype, shape, begin, end);

        long Offset(JsonElement e) => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var x) && x >= 0 ? x
            : throw fail($"tensor '{name}' has a data offset that is not a non-negative integer: {e.GetRawText()}.");
    }

    private static float[] Convert(ReadOnlySpan<byte> b, string dtype)
    {
        switch (dtype)
        {
            case "F32":
                var f = new float[b.Length / 4];
                if (BitConverter.IsLittleEndian) b.CopyTo(MemoryMarshal.AsBytes(f.AsSpan()));
                else for (int i = 0; i < f.Length; i++) f[i] = BinaryPrimitives.ReadSingleLittleEndian(b[(4 * i)..]);
                return f;
            case "F64": return Each(b, 8, s => (float)BinaryPrimitives.ReadDoubleLittleEndian(s));
            case "F16": return Each(b, 2, s => (float)BinaryPrimitives.ReadHalfLittleEndian(s));
            case "BF16": return Each(b, 2, s => BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(s) << 16));
            case "I64": return Each(b, 8, s => BinaryPrimitives.ReadInt64LittleEndian(s));
            case "I32": return Each(b, 4, s => BinaryPrimitives.ReadInt32LittleEndian(s));
            default: throw new InvalidOperationException($"dtype {dtype} passed validation but has no converter.");
        }
    }

    private delegate float Reader(ReadOnlySpan<byte> s);

    private static float[] Each(ReadOnlySpan<byte> b, int size, Reader read)
    {
        var f = new float[b.Length / size];
        for (int i = 0; i < f.Length; i++) f[i] = read(b.Slice(i * size, size));
        return f;
    }
}
