// Control-plane payloads written by hand in Hyperion 0.12.2's format, each first with an honest length (it decodes to the
// message, so the format is right) and then with a length that claims far more than the payload holds: a type name, a
// string, a uint[], an array of records and a byte[]. Hyperion alone allocates what the prefix claims before it reads a
// byte; through HyperionCodec each bomb is one SerializationException and the call allocates under a megabyte.
using System.Buffers.Binary;
using System.Runtime.Serialization;
using System.Text;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Serialization;
using Xunit;
using static DistTrain.Cluster.Messages.CoordinatorMessages;
using static DistTrain.Cluster.Messages.ParameterServerMessages;

namespace DistTrain.Cluster.Tests;

public sealed class HyperionLengthBombTests
{
    private const int Bomb = 0x0400_0000; // 64 Mi elements: 64 MB to 512 MB for Hyperion, depending on the element
    private const long AllowedAllocation = 1 << 20;
    private readonly HyperionCodec _codec = new();

    /// <summary>Hyperion's wire pieces (no version tolerance, no references): what HyperionCodec writes.</summary>
    private sealed class Payload
    {
        private readonly MemoryStream _s = new();
        public Payload Byte(byte b) { _s.WriteByte(b); return this; }
        public Payload Int(int v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, v); _s.Write(b); return this; }
        public Payload Long(long v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteInt64LittleEndian(b, v); _s.Write(b); return this; }
        public Payload Bytes(byte[] b) { _s.Write(b); return this; }
        public Payload Type(Type t) => TypeName($"{t.FullName}, {t.Assembly.GetName().Name}");
        public Payload TypeName(string name)
        {
            var b = Encoding.UTF8.GetBytes(name);
            return Byte(255).Int(b.Length).Bytes(b);
        }
        public Payload ShortString(string s) { var b = Encoding.UTF8.GetBytes(s); return Byte((byte)(b.Length + 1)).Bytes(b); }
        public byte[] ToArray() => _s.ToArray();
    }

    private (object? Result, Exception? Error, long Allocated) Decode(byte[] bytes)
    {
        _codec.Deserialize(_codec.Serialize(new RequestWork("warm-up", 0))); // the codec's first use compiles readers
        long before = GC.GetAllocatedBytesForCurrentThread();
        object? result = null;
        Exception? error = null;
        try { result = _codec.Deserialize(bytes); }
        catch (Exception e) { error = e; }
        return (result, error, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private void AssertRefusedCheaply(byte[] bomb, string reason)
    {
        var (result, error, allocated) = Decode(bomb);
        Assert.Null(result);
        Assert.True(allocated < AllowedAllocation, $"refusing a {bomb.Length}-byte payload allocated {allocated:N0} bytes");
        var e = Assert.IsType<SerializationException>(error);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void A_type_name_claiming_64_MiB_is_refused_before_allocation()
    {
        var honest = new Payload().Type(typeof(RequestWork)).Long(7).ShortString("w1").ToArray();
        Assert.Equal(new RequestWork("w1", 7), _codec.Deserialize(honest));
        var bomb = new Payload().Byte(255).Int(Bomb).Bytes(Encoding.UTF8.GetBytes("DistTrain")).ToArray();
        AssertRefusedCheaply(bomb, $"a type name claims length {Bomb}");
    }

    [Fact]
    public void A_string_claiming_64_MiB_is_refused_before_allocation()
    {
        // RequestJob's fields in Hyperion's (ordinal) order: ProtocolVersion (int), WorkerId (string, 255 = Int32 length follows).
        var honest = new Payload().Type(typeof(RequestJob)).Int(5).Byte(255).Int(2).Bytes("w1"u8.ToArray()).ToArray();
        Assert.Equal(new RequestJob("w1", 5), _codec.Deserialize(honest));
        var bomb = new Payload().Type(typeof(RequestJob)).Int(5).Byte(255).Int(Bomb).Bytes("w1"u8.ToArray()).ToArray();
        AssertRefusedCheaply(bomb, $"a string claims length {Bomb}");
    }

    [Fact]
    public void A_uint_array_claiming_64_Mi_elements_is_refused_before_allocation()
    {
        // NormShare: Digits (uint[]: 252, element manifest 18, Int32 count, 4 bytes each), Shard (int), Step (long).
        var honest = new Payload().Type(typeof(NormShare)).Byte(252).Byte(18).Int(2).Int(11).Int(12).Int(1).Long(9).ToArray();
        var back = Assert.IsType<NormShare>(_codec.Deserialize(honest));
        Assert.Equal((1, 9L), (back.Shard, back.Step));
        Assert.Equal(new uint[] { 11, 12 }, back.Digits);
        var bomb = new Payload().Type(typeof(NormShare)).Byte(252).Byte(18).Int(Bomb).Int(11).Int(12).Int(1).Long(9).ToArray();
        AssertRefusedCheaply(bomb, $"a UInt32[] claims length {Bomb}");
    }

    [Fact]
    public void An_array_of_records_claiming_64_Mi_elements_is_refused_before_allocation()
    {
        // ShardLayout: ParameterCount (long), Shards (ShardInfo[] by type name, Int32 count, one manifest per element; 0 = null).
        var honest = new Payload().Type(typeof(ShardLayout)).Long(10).Type(typeof(ShardInfo[])).Int(1).Byte(0).ToArray();
        var back = Assert.IsType<ShardLayout>(_codec.Deserialize(honest));
        Assert.Equal((10L, 1), (back.ParameterCount, back.Shards.Length));
        var bomb = new Payload().Type(typeof(ShardLayout)).Long(10).Type(typeof(ShardInfo[])).Int(Bomb).Byte(0).ToArray();
        AssertRefusedCheaply(bomb, $"a ShardInfo[] claims length {Bomb}");
    }

    [Fact]
    public void A_byte_array_claiming_64_MiB_is_refused_before_allocation()
    {
        // JobDescription's first field in ordinal order is DataKey (byte[]: manifest 9, Int32 length, the bytes).
        var job = MessageSamples.All().OfType<JobDescription>().First() with { DataKey = [1, 2, 3, 4] };
        var honest = _codec.Serialize(job);
        int at = new Payload().Type(typeof(JobDescription)).ToArray().Length;
        Assert.Equal(9, honest[at]);
        Assert.Equal(4, BinaryPrimitives.ReadInt32LittleEndian(honest.AsSpan(at + 1)));
        var bomb = honest.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(bomb.AsSpan(at + 1), Bomb);
        AssertRefusedCheaply(bomb, $"a byte array claims length {Bomb}");
    }

    [Fact]
    public void A_negative_length_is_refused()
    {
        var bomb = new Payload().Type(typeof(RequestJob)).Int(5).Byte(255).Int(-2).Bytes("w1"u8.ToArray()).ToArray();
        AssertRefusedCheaply(bomb, "a string claims length -2");
    }

    [Fact]
    public void A_record_where_the_message_declares_another_is_refused_before_hyperion_follows_it()
    {
        // A ShardLayout inside a ShardLayout's shard list: Hyperion reads it (and, nested again and again, recurses until the
        // stack runs out) before the array store fails; the walk refuses it at the first element.
        var nested = new Payload().Type(typeof(ShardLayout)).Long(10).Type(typeof(ShardInfo[])).Int(1)
            .Byte(254).Byte(0).Byte(0) // type index 0: ShardLayout again
            .Long(10).Byte(254).Byte(1).Byte(0).Int(0).ToArray();
        AssertRefusedCheaply(nested, "a ShardLayout where the message declares a ShardInfo");
    }

    [Fact]
    public void Every_single_byte_change_of_every_message_decodes_or_is_refused_within_a_small_multiple_of_its_size()
    {
        foreach (var m in MessageSamples.All()) _codec.Deserialize(_codec.Serialize(m)); // compile every reader once
        int refused = 0, decoded = 0;
        foreach (var m in MessageSamples.All())
        {
            var bytes = _codec.Serialize(m);
            for (int i = 0; i < bytes.Length; i++)
                foreach (byte v in new byte[] { 0x00, 0x7F, 0xFF })
                {
                    if (bytes[i] == v) continue;
                    var mutated = bytes.ToArray();
                    mutated[i] = v;
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    try { _codec.Deserialize(mutated); decoded++; }
                    catch (SerializationException) { refused++; }
                    long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                    Assert.True(allocated < 64 * 1024 + 16L * bytes.Length,
                        $"{m.GetType().Name} with byte {i} set to {v:x2}: {allocated:N0} bytes allocated for a {bytes.Length}-byte payload");
                }
        }
        Assert.True(refused > 1000 && decoded > 100, $"{refused} refused, {decoded} decoded");
    }
}
