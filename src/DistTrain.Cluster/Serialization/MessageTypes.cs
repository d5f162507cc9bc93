// The allow-list of the control plane: every concrete type implementing IDistTrainMessage in this
// assembly, the enums they carry and arrays of both. Nothing else is ever deserialized.
using System.Collections.Frozen;
using System.Reflection;
using DistTrain.Cluster.Messages;

namespace DistTrain.Cluster.Serialization;

public static class MessageTypes
{
    /// <summary>Concrete message types (what may be the root object of a control message).</summary>
    public static readonly FrozenSet<Type> Messages = typeof(IDistTrainMessage).Assembly.GetTypes()
        .Where(t => typeof(IDistTrainMessage).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
        .ToFrozenSet();

    /// <summary>Every type the reading serializer accepts anywhere in the object graph.</summary>
    public static readonly FrozenSet<Type> Allowed = Messages
        .Concat(typeof(IDistTrainMessage).Assembly.GetTypes().Where(t => t.IsEnum && t.Namespace == typeof(IDistTrainMessage).Namespace))
        .SelectMany(t => new[] { t, t.MakeArrayType() })
        // Primitives and their arrays skip Hyperion's filter anyway; listed so the intent is explicit.
        .Concat([typeof(string), typeof(float[]), typeof(double[]), typeof(int[]), typeof(long[]), typeof(string[]), typeof(byte[])])
        .ToFrozenSet();

    /// <summary>True if <paramref name="t"/> may be the root of a control message.</summary>
    public static bool IsMessage(Type t) => Messages.Contains(t);
}
