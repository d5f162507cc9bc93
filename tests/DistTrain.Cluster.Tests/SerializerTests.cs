// Round trips of every control message through our Hyperion serializer (directly, and through Akka's
// serialization system with the shipped HOCON binding), and refusals of foreign types and garbage.
using System.Runtime.Serialization;
using Xunit;
using System.Text.Json;
using Akka.Actor;
using Akka.Configuration;
using DistTrain.Cluster.Configuration;
using DistTrain.Cluster.Messages;
using DistTrain.Cluster.Serialization;

namespace DistTrain.Cluster.Tests;

/// <summary>One ActorSystem (local provider, shipped HOCON) shared by the serializer tests.</summary>
public sealed class LocalSystemFixture : IDisposable
{
    public ActorSystem System { get; } = ActorSystem.Create("serializer-test",
        ClusterConfig.Load("local", new ClusterOverrides { Hocon = "akka.actor.provider = local" }));

    public void Dispose() => System.Terminate().Wait(TimeSpan.FromSeconds(10));
}

public sealed class SerializerTests(LocalSystemFixture fixture) : IClassFixture<LocalSystemFixture>
{
    private readonly HyperionCodec _codec = new(120_000);
    private readonly ActorSystem _system = fixture.System;

    public static TheoryData<string> MessageNames()
    {
        var data = new TheoryData<string>();
        foreach (var m in MessageSamples.All()) data.Add(m.ToString()!);
        return data;
    }

    private static IDistTrainMessage Sample(string name) => MessageSamples.All().First(m => m.ToString() == name);

    // Structural comparison independent of record equality (which compares arrays by reference);
    // floats compared bit for bit through their integer images, so NaN and -0 must survive too.
    private static string Canonical(object o) => JsonSerializer.Serialize(o, o.GetType(), new JsonSerializerOptions
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new FloatBitsConverter() },
    });

    private sealed class FloatBitsConverter : System.Text.Json.Serialization.JsonConverter<float>
    {
        public override float Read(ref Utf8JsonReader reader, Type t, JsonSerializerOptions o) => throw new NotSupportedException();
        public override void Write(Utf8JsonWriter w, float v, JsonSerializerOptions o) => w.WriteStringValue(BitConverter.SingleToInt32Bits(v).ToString("x8"));
    }

    [Fact]
    public void Samples_cover_every_message_type()
    {
        var covered = MessageSamples.All().Select(m => m.GetType()).ToHashSet();
        var missing = MessageTypes.Messages.Where(t => !covered.Contains(t)).Select(t => t.FullName).ToArray();
        Assert.True(missing.Length == 0, "no round-trip sample for: " + string.Join(", ", missing));
    }

    [Theory]
    [MemberData(nameof(MessageNames))]
    public void Round_trip_directly(string name)
    {
        var message = Sample(name);
        var back = _codec.Deserialize(_codec.Serialize(message));
        Assert.IsType(message.GetType(), back);
        Assert.Equal(Canonical(message), Canonical(back));
    }

    [Theory]
    [MemberData(nameof(MessageNames))]
    public void Round_trip_through_akka_serialization_with_the_hocon_binding(string name)
    {
        var message = Sample(name);
        var serializer = _system.Serialization.FindSerializerFor(message);
        Assert.IsType<HyperionSerializer>(serializer);
        var bytes = serializer.ToBinary(message);
        var back = _system.Serialization.Deserialize(bytes, serializer.Identifier, message.GetType());
        Assert.Equal(Canonical(message), Canonical(back));
    }

    private sealed record Foreign(string Name, int Value);

    [Fact]
    public void A_type_not_on_the_allow_list_is_refused_when_read()
    {
        var plain = new Hyperion.Serializer();
        using var ms = new MemoryStream();
        plain.Serialize(new Foreign("evil", 1), ms);
        var e = Assert.Throws<SerializationException>(() => _codec.Deserialize(ms.ToArray()));
        Assert.Contains("+Foreign, DistTrain.Cluster.Tests' is not a DistTrain message type", e.Message);
    }

    [Fact]
    public void A_primitive_root_is_refused_even_though_hyperion_lets_primitives_through()
    {
        var plain = new Hyperion.Serializer();
        using var ms = new MemoryStream();
        plain.Serialize("just a string", ms);
        var e = Assert.Throws<SerializationException>(() => _codec.Deserialize(ms.ToArray()));
        Assert.Contains("starts with a String, not a DistTrain message", e.Message);
    }

    [Fact]
    public void Writing_a_foreign_type_is_refused()
    {
        var e = Assert.Throws<SerializationException>(() => _codec.Serialize(new Foreign("x", 1)));
        Assert.Contains("IDistTrainMessage", e.Message);
    }

    [Theory]
    [InlineData(new byte[] { 0 })]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF })]
    [InlineData(new byte[] { 42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 })]
    [InlineData(new byte[] { })]
    public void Garbage_bytes_become_one_serialization_exception(byte[] garbage)
    {
        Assert.Throws<SerializationException>(() => _codec.Deserialize(garbage));
    }

    [Fact]
    public void Every_truncation_of_a_valid_payload_is_refused()
    {
        var bytes = _codec.Serialize(MessageSamples.All().OfType<CoordinatorMessages.JobDescription>().First());
        for (var n = 0; n < bytes.Length; n++)
            Assert.Throws<SerializationException>(() => _codec.Deserialize(bytes.AsSpan(0, n)));
    }

    [Fact]
    public void Trailing_bytes_are_refused()
    {
        var bytes = _codec.Serialize(new CoordinatorMessages.RequestWork("worker-1", 5)).Append((byte)0).ToArray();
        Assert.Throws<SerializationException>(() => _codec.Deserialize(bytes));
    }

    [Fact]
    public void A_message_above_the_limit_fails_at_the_sender_with_the_key_to_change()
    {
        var big = new CoordinatorMessages.RegisterRejected("worker-1", new string('x', 200_000));
        var e = Assert.Throws<SerializationException>(() => _codec.Serialize(big));
        Assert.Contains("disttrain.max-message-bytes", e.Message);
    }

    private sealed class EchoActor : ReceiveActor
    {
        public EchoActor() => ReceiveAny(m => Sender.Tell(m));
    }

    [Fact]
    public async Task Actors_exchange_every_message_with_serialize_messages_on()
    {
        var config = ClusterConfig.Load("local", new ClusterOverrides { Hocon = "akka.actor.provider = local\nakka.actor.serialize-messages = on" });
        Assert.True(config.GetBoolean("akka.actor.serialize-messages", false));
        var system = ActorSystem.Create("serialize-on", config);
        try
        {
            var echo = system.ActorOf(Props.Create(() => new EchoActor()), "echo");
            foreach (var message in MessageSamples.All())
            {
                var back = await echo.Ask<object>(message, TimeSpan.FromSeconds(10));
                // serialize-messages hands the receiver a deserialized copy, so a new instance proves the wire path ran.
                Assert.NotSame(message, back);
                Assert.Equal(Canonical(message), Canonical(back));
                // A copy made inside this process is local: MessageGate admits it without a remote sender.
                Assert.False(HyperionSerializer.CameOverTheWire(back), $"{message.GetType().Name} copied by serialize-messages counted as from another node");
            }
            // Bytes that did not come from this thread's last write are another node's.
            var serializer = (HyperionSerializer)((ExtendedActorSystem)system).Serialization.FindSerializerForType(typeof(CoordinatorMessages.RequestWork));
            var fromAfar = serializer.FromBinary(new HyperionCodec().Serialize(new CoordinatorMessages.RequestWork("w", 0)), typeof(CoordinatorMessages.RequestWork));
            Assert.True(HyperionSerializer.CameOverTheWire(fromAfar));
        }
        finally
        {
            await system.Terminate();
        }
    }
}
