// A float32 tensor: a shape over a contiguous row-major slice of a float[] that it may share
// (a view into a flat parameter buffer, a reused workspace). Relies on nothing but the BCL.
namespace DistTrain.Tensors;

public sealed class Tensor
{
    /// <summary>The backing array; the tensor's elements are Buffer[Offset .. Offset+Length).</summary>
    public float[] Buffer { get; }
    public int Offset { get; }
    public int[] Shape { get; }
    public int Length { get; }

    /// <summary>Allocates a zeroed tensor of the given shape.</summary>
    public Tensor(params int[] shape) : this(new float[Checked(shape)], 0, shape) { }

    /// <summary>A view of <paramref name="buffer"/> from <paramref name="offset"/> with the given shape.</summary>
    public Tensor(float[] buffer, int offset, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        var length = Checked(shape);
        if (offset < 0 || offset + (long)length > buffer.Length)
            throw new ArgumentException(
                $"A view of shape {ShapeString(shape)} at offset {offset} does not fit in a buffer of {buffer.Length} floats.",
                nameof(offset));
        Buffer = buffer;
        Offset = offset;
        Shape = (int[])shape.Clone();
        Length = length;
    }

    public int Rank => Shape.Length;
    public int Dim(int i) => Shape[i < 0 ? Shape.Length + i : i];
    public Span<float> Span => Buffer.AsSpan(Offset, Length);
    public ref float this[int i] => ref Buffer[Offset + i];

    /// <summary>A view with another shape over the same elements (no copy).</summary>
    public Tensor Reshape(params int[] shape)
    {
        if (Checked(shape) != Length)
            throw new ArgumentException(
                $"Cannot reshape {ShapeString(Shape)} ({Length} elements) to {ShapeString(shape)}.", nameof(shape));
        return new Tensor(Buffer, Offset, shape);
    }

    public void Clear() => Span.Clear();
    public void CopyFrom(ReadOnlySpan<float> src) => src.CopyTo(Span);
    public float[] ToArray() => Span.ToArray();

    public bool SameShape(Tensor other) => Shape.AsSpan().SequenceEqual(other.Shape);

    /// <summary>Throws an ArgumentException naming <paramref name="name"/> unless its shape is <paramref name="expected"/>.</summary>
    public void RequireShape(string name, params int[] expected)
    {
        if (!Shape.AsSpan().SequenceEqual(expected))
            throw new ArgumentException($"{name} has shape {ShapeString(Shape)} but {ShapeString(expected)} is required.", name);
    }

    public static string ShapeString(ReadOnlySpan<int> shape) => "(" + string.Join(",", shape.ToArray()) + ")";

    public override string ToString() => $"Tensor{ShapeString(Shape)}";

    private static int Checked(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"Shape {ShapeString(shape)} has a negative dimension.", nameof(shape));
            n *= d;
            if (n > int.MaxValue) throw new ArgumentException($"Shape {ShapeString(shape)} has more than 2^31 elements.", nameof(shape));
        }
        return (int)n;
    }
}
