// exp(x − shift), the numerator of a max-shifted softmax, through FastExp.
using System.Runtime.Intrinsics;

namespace DistTrain.Tensors.Kernels.Operators;

public readonly struct ExpShiftOperator(float shift) : IUnaryOperator
{
    public float Invoke(float x) => FastExp.Exp(x - shift);
    public Vector256<float> Invoke(Vector256<float> x) => FastExp.Exp(x - Vector256.Create(shift));
    public Vector512<float> Invoke(Vector512<float> x) => FastExp.Exp(x - Vector512.Create(shift));
}
