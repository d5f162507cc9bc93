// A named slice of a model's flat value buffer, with the same slice of the flat gradient buffer
// (DESIGN contract 1). Learned state is a parameter; saved-but-not-learned state (BatchNorm running
// statistics) is a buffer, which lives in the model's separate flat buffer vector.
using DistTrain.Tensors;

namespace DistTrain.Nn;

public sealed class Param
{
    public Param(string localName, int[] shape, bool isBuffer = false)
    {
        LocalName = localName;
        Shape = shape;
        IsBuffer = isBuffer;
        Length = 1;
        foreach (var d in shape) Length *= d;
    }

    /// <summary>Name inside its layer (`weight`, `bias`, `running_mean`).</summary>
    public string LocalName { get; }
    /// <summary>Full PyTorch state_dict name (`3.weight`), set when the model is built.</summary>
    public string Name { get; internal set; } = "";
    public int[] Shape { get; }
    public int Length { get; }
    public bool IsBuffer { get; }
    /// <summary>Offset into <see cref="ParameterStore.Values"/> (or <see cref="ParameterStore.Buffers"/> for buffers).</summary>
    public int Offset { get; internal set; } = -1;

    /// <summary>View of the value; bound when the model is built.</summary>
    public Tensor Value { get; internal set; } = null!;
    /// <summary>View of the gradient (null for buffers).</summary>
    public Tensor Grad { get; internal set; } = null!;

    public override string ToString() => $"{Name} {Tensor.ShapeString(Shape)}";
}

/// <summary>The flat buffers of a model: values, gradients (same layout), and non-learned buffers.</summary>
public sealed class ParameterStore
{
    public ParameterStore(IReadOnlyList<Param> all)
    {
        All = all;
        int nv = 0, nb = 0;
        foreach (var p in all)
        {
            if (p.IsBuffer) { p.Offset = nb; nb += p.Length; }
            else { p.Offset = nv; nv += p.Length; }
        }
        Values = new float[nv];
        Grads = new float[nv];
        Buffers = new float[nb];
        foreach (var p in all)
        {
            if (p.IsBuffer) p.Value = new Tensor(Buffers, p.Offset, p.Shape);
            else
            {
                p.Value = new Tensor(Values, p.Offset, p.Shape);
                p.Grad = new Tensor(Grads, p.Offset, p.Shape);
            }
        }
    }

    /// <summary>Every parameter and buffer, in model order.</summary>
    public IReadOnlyList<Param> All { get; }
    public float[] Values { get; }
    public float[] Grads { get; }
    public float[] Buffers { get; }
    public int Count => Values.Length;

    public IEnumerable<Param> Learned => All.Where(p => !p.IsBuffer);
    public void ZeroGrad() => Array.Clear(Grads);
}
