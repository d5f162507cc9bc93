// Checkpoints: exact round trip (bits), the safetensors layout, every corruption the format defines
// giving a CheckpointException that names the file and the problem, model/optimizer fit checks, and
// atomic replacement when a write fails midway.
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Optimizers;
using Xunit;

namespace DistTrain.Nn.Tests.Checkpoints;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("disttrain-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Param P(string name, int[] shape, bool buffer = false) => new(name[(name.IndexOf('.') + 1)..], shape, buffer) { Name = name };

    // A small model's store: a dense layer, a batch-norm's parameters and buffers (one 0-dim), another dense.
    private static ParameterStore Model(int hidden = 4, bool withBn = true)
    {
        var ps = new List<Param> { P("0.weight", [hidden, 3]), P("0.bias", [hidden]) };
        if (withBn)
            ps.AddRange([P("1.weight", [hidden]), P("1.bias", [hidden]), P("1.running_mean", [hidden], true),
                P("1.running_var", [hidden], true), P("1.num_batches_tracked", [], true)]);
        ps.Add(P("3.weight", [2, hidden]));
        var store = new ParameterStore(ps);
        var r = new Random(9);
        for (int i = 0; i < store.Values.Length; i++) store.Values[i] = (float)(r.NextDouble() - 0.5);
        for (int i = 0; i < store.Buffers.Length; i++) store.Buffers[i] = (float)r.NextDouble();
        // values whose bits a sloppy writer would lose: NaN payload, −0, subnormal, ±∞, extremes
        store.Values[0] = BitConverter.Int32BitsToSingle(0x7FC0_1234);
        store.Values[1] = -0f;
        store.Values[2] = float.Epsilon * 3;
        store.Values[3] = float.NegativeInfinity;
        store.Values[4] = float.MaxValue;
        return store;
    }

    private static readonly CheckpointInfo Info = new("{\"preset\":\"test\"}", Step: 1234, Epoch: 3, Seed: -7)
    { Extra = new Dictionary<string, string> { ["optimizer"] = "adam", ["note"] = "ünïcode ok" } };

    private static int[] Bits(float[] x) => x.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public void Round_trip_is_exact_to_the_bit_and_keeps_metadata()
    {
        var path = Path.Combine(_dir, "model.safetensors");
        var saved = Model();
        Checkpoint.Save(path, saved, Info);
        var loaded = Model();
        Array.Clear(loaded.Values);
        Array.Clear(loaded.Buffers);
        var info = Checkpoint.LoadInto(loaded, path);
        Assert.Equal(Bits(saved.Values), Bits(loaded.Values));
        Assert.Equal(Bits(saved.Buffers), Bits(loaded.Buffers));
        Assert.Equal((Info.ModelSpec, Info.Step, Info.Epoch, Info.Seed), (info.ModelSpec, info.Step, info.Epoch, info.Seed));
        Assert.Equal("adam", info.Extra["optimizer"]);
        Assert.Equal("ünïcode ok", info.Extra["note"]);
        Assert.True(SafeTensors.Read(path).ChecksumVerified);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Layout_is_safetensors_in_model_order()
    {
        var path = Path.Combine(_dir, "model.safetensors");
        var store = Model();
        Checkpoint.Save(path, store, Info);
        var bytes = File.ReadAllBytes(path);
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        using var doc = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, n));
        Assert.Equal("pt", doc.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.Equal("1234", doc.RootElement.GetProperty("__metadata__").GetProperty("step").GetString());
        long offset = 0;
        var expectedData = new List<byte>();
        foreach (var p in store.All)
        {
            var e = doc.RootElement.GetProperty(p.Name);
            Assert.Equal("F32", e.GetProperty("dtype").GetString());
            Assert.Equal(p.Shape, e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray());
            Assert.Equal([offset, offset + 4L * p.Length], e.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray());
            offset += 4L * p.Length;
            foreach (var f in p.Value.ToArray()) expectedData.AddRange(BitConverter.GetBytes(f)); // little-endian host
        }
        Assert.Equal(expectedData.ToArray(), bytes[(8 + n)..]);
        // the manifest is sha256sum's format
        var manifest = File.ReadAllText(path + ".sha256");
        Assert.Equal($"{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))}  model.safetensors\n", manifest);
    }

    [Fact]
    public void Read_converts_other_dtypes_that_pytorch_writes()
    {
        // num_batches_tracked is int64 in a PyTorch state_dict; F16/BF16/F64 appear in exported weights
        var data = new List<byte>();
        data.AddRange(BitConverter.GetBytes(42L));
        data.AddRange(BitConverter.GetBytes((Half)1.5));
        data.AddRange(BitConverter.GetBytes((ushort)0x4040)); // bf16 3.0
        data.AddRange(BitConverter.GetBytes(-2.25));
        data.AddRange(BitConverter.GetBytes(-5));
        var path = Raw("a.safetensors", """
            {"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},
             "b":{"dtype":"BF16","shape":[1],"data_offsets":[10,12]},"d":{"dtype":"F64","shape":[1,1],"data_offsets":[12,20]},
             "i":{"dtype":"I32","shape":[1],"data_offsets":[20,24]}}
            """, data.ToArray());
        var f = SafeTensors.Read(path);
        Assert.Equal([42f, 1.5f, 3f, -2.25f, -5f], new[] { "n", "h", "b", "d", "i" }.Select(k => f[k].Data[0]).ToArray());
        Assert.Equal(["n", "h", "b", "d", "i"], f.Names); // data-offset order
        Assert.False(f.ChecksumVerified);
    }

    // ---- corruptions: each names the file and the problem ----

    private string Raw(string name, string header, byte[] data, ulong? headerLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void Fails(string path, string problem)
    {
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Read(path));
        Assert.Equal(path, e.FilePath);
        Assert.Contains(path, e.Message);
        Assert.Contains(problem, e.Message);
    }

    private string Valid()
    {
        var path = Path.Combine(_dir, $"v{Guid.NewGuid():N}.safetensors");
        Checkpoint.Save(path, Model(), Info);
        File.Delete(path + ".sha256"); // so the structural checks, not the checksum, see the corruption
        return path;
    }

    private static void Patch(string path, Action<List<byte>> edit)
    {
        var b = File.ReadAllBytes(path).ToList();
        edit(b);
        File.WriteAllBytes(path, b.ToArray());
    }

    [Fact]
    public void Corrupted_valid_files_are_rejected()
    {
        var p = Valid();
        Patch(p, b => b.RemoveRange(3, b.Count - 3));
        Fails(p, "too short for the 8-byte header length");

        p = Valid();
        Patch(p, b => { b[4] = 0x01; }); // header length += 2^32
        Fails(p, "is absurd");

        p = Valid();
        Patch(p, b => { var n = BinaryPrimitives.ReadUInt64LittleEndian(b.ToArray()); BinaryPrimitives.WriteUInt64LittleEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(b), n + (ulong)b.Count); });
        Fails(p, "larger than the file");

        p = Valid();
        Patch(p, b => b[8] = (byte)'[');
        Fails(p, "not valid JSON");

        p = Valid();
        Patch(p, b => b.RemoveRange(b.Count - 5, 5)); // truncated data
        Fails(p, "past the end of the file");

        p = Valid();
        Patch(p, b => b.AddRange(new byte[12]));
        Fails(p, "the data does not end at the file end: 12 bytes follow the last tensor");

        p = Valid();
        Patch(p, b => { var i = IndexOf(b, "\"F32\""); b[i + 2] = (byte)'9'; });
        Fails(p, "unknown dtype 'F92'");
    }

    private static int IndexOf(List<byte> b, string s)
    {
        var needle = Encoding.ASCII.GetBytes(s);
        for (int i = 0; i + needle.Length <= b.Count; i++)
            if (b.Skip(i).Take(needle.Length).SequenceEqual(needle)) return i;
        throw new InvalidOperationException(s);
    }

    [Fact]
    public void Checksum_mismatch_is_detected()
    {
        var path = Path.Combine(_dir, "model.safetensors");
        Checkpoint.Save(path, Model(), Info);
        Patch(path, b => b[^3] ^= 0x10); // one flipped bit in the data: structurally still valid
        Fails(path, "checksum mismatch");
        Assert.Throws<CheckpointException>(() => Checkpoint.LoadInto(Model(), path));
        File.WriteAllText(path + ".sha256", "not-a-hash  model.safetensors\n");
        Fails(path, "does not start with a SHA-256");
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}""", 16, "not contiguous: bytes [8, 12) before tensor 'b'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}""", 8, "out of order")]
    [InlineData("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "hold 8 bytes but shape (3) of F32 needs 12")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "not contiguous: bytes [0, 4)")]
    [InlineData("""{"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}""", 2, "dtype BOOL, which this reader does not convert")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "not a non-negative integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1]}}""", 4, "no data_offsets")]
    [InlineData("""{"__metadata__":{"step":5},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4, "__metadata__ value 'step' is not a string")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "names 'a' twice")]
    [InlineData("""[1,2]""", 0, "not an object")]
    public void Malformed_headers_are_rejected(string header, int dataBytes, string problem)
    {
        var path = Raw("bad.safetensors", header, new byte[dataBytes]);
        Fails(path, problem);
    }

    [Fact]
    public void Missing_file_is_named()
    {
        var path = Path.Combine(_dir, "nope.safetensors");
        Fails(path, "cannot be read");
    }

    [Fact]
    public void LoadInto_lists_every_mismatch_and_changes_nothing()
    {
        var path = Path.Combine(_dir, "model.safetensors");
        Checkpoint.Save(path, Model(hidden: 4), Info);
        // hidden 5 (shape mismatches), no batch norm (extra 1.*), and a parameter the file lacks
        var other = new ParameterStore([P("0.weight", [5, 3]), P("0.bias", [5]), P("3.weight", [2, 4]), P("4.bias", [2])]);
        other.Values.AsSpan().Fill(7f);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.LoadInto(other, path));
        Assert.Equal(path, e.FilePath);
        foreach (var s in new[] { "'0.weight' has shape (4,3) in the file but (5,3) in the model", "'0.bias' has shape (4)",
                     "missing '4.bias' (2)", "extra '1.running_mean' (4)", "extra '1.num_batches_tracked' ()" })
            Assert.Contains(s, e.Message);
        Assert.DoesNotContain("'3.weight'", e.Message);
        Assert.All(other.Values, v => Assert.Equal(7f, v));
    }

    [Fact]
    public void Optimizer_state_round_trips_and_training_continues_identically()
    {
        var weights = Path.Combine(_dir, "model.safetensors");
        var path = Checkpoint.OptimizerPathFor(weights);
        Assert.Equal(Path.Combine(_dir, "model.optimizer.safetensors"), path);
        const int n = 21;
        var a = new Adam(n);
        var p = Enumerable.Range(0, n).Select(i => (float)Math.Cos(i)).ToArray();
        var g = Enumerable.Range(0, n).Select(i => (float)Math.Sin(i + 1)).ToArray();
        for (int t = 1; t <= 3; t++) a.Step(p, g, 0.01f, t);
        Checkpoint.SaveOptimizer(path, a, 3);

        var b = new Adam(n);
        Assert.Equal(3, Checkpoint.LoadOptimizerInto(b, path));
        for (int s = 0; s < 2; s++) Assert.Equal(Bits(a.State[s].Data), Bits(b.State[s].Data));
        var pb = p.ToArray();
        a.Step(p, g, 0.01f, 4);
        b.Step(pb, g, 0.01f, 4);
        Assert.Equal(Bits(p), Bits(pb));

        var e = Assert.Throws<CheckpointException>(() => Checkpoint.LoadOptimizerInto(new Momentum(n), path));
        Assert.Contains("missing state 'momentum_buffer'", e.Message);
        Assert.Contains("extra state 'exp_avg'", e.Message);
        Assert.Contains("Adam(", e.Message);
        e = Assert.Throws<CheckpointException>(() => Checkpoint.LoadOptimizerInto(new Adam(n + 1), path));
        Assert.Contains("state 'exp_avg' has shape (21) in the file but (22) is needed", e.Message);
    }

    // ---- atomicity ----

    private sealed class ThrowingStream(Stream inner, long failAfter) : Stream
    {
        private long _written;
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > failAfter)
            {
                inner.Write(buffer[..(int)(failAfter - _written)]);
                throw new IOException("simulated failure: disk full");
            }
            inner.Write(buffer);
            _written += buffer.Length;
        }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    [Fact]
    public void A_write_that_fails_midway_leaves_the_previous_checkpoint_intact()
    {
        var path = Path.Combine(_dir, "model.safetensors");
        var first = Model();
        Checkpoint.Save(path, first, Info);
        var before = File.ReadAllBytes(path);
        var manifestBefore = File.ReadAllText(path + ".sha256");

        var second = Model(hidden: 4);
        second.Values.AsSpan().Fill(1f);
        var tensors = second.All.Select(q => (q.Name, q.Shape, (ReadOnlyMemory<float>)q.Value.ToArray())).ToList();
        var size = new MemoryStream();
        SafeTensors.Write(size, tensors, new Dictionary<string, string>());
        foreach (var failAfter in new long[] { 0, 5, 100, size.Length - 1 })
        {
            Assert.Throws<IOException>(() =>
                AtomicFile.WriteWithManifest(path, s => SafeTensors.Write(new ThrowingStream(s, failAfter), tensors, new Dictionary<string, string>())));
            Assert.Equal(before, File.ReadAllBytes(path));
            Assert.Equal(manifestBefore, File.ReadAllText(path + ".sha256"));
            Assert.Equal(["model.safetensors", "model.safetensors.sha256"], Directory.GetFiles(_dir).Select(f => Path.GetFileName(f)!).Order().ToArray());
        }
        var check = Model();
        Array.Clear(check.Values);
        Checkpoint.LoadInto(check, path);
        Assert.Equal(Bits(first.Values), Bits(check.Values));

        // bad input is rejected before the disk is touched
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(path, [("x", [3], new float[2])], null));
        Assert.Equal(before, File.ReadAllBytes(path));

        // and a successful overwrite replaces both file and manifest
        Checkpoint.Save(path, second, Info);
        Assert.True(SafeTensors.Read(path).ChecksumVerified);
        Assert.Equal(1f, SafeTensors.Read(path)["0.bias"].Data[0]);
    }
}
