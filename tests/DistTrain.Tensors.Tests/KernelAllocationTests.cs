// Steady state allocates nothing: pooling, softmax cross-entropy and the elementwise drivers, after warm-up,
// at one and two threads (GC.GetAllocatedBytesForCurrentThread).
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;
using Xunit;

namespace DistTrain.Tensors.Tests;

public class KernelAllocationTests
{
    [Fact]
    public void PoolSoftmaxAndElementwiseAllocateNothingAfterWarmUp()
    {
        var ps = new PoolShape(4, 8, 28, 28, 2, 2);
        var x = ConvTests.Random(ps.InputLength, 1); var y = new float[ps.OutputLength]; var arg = new int[ps.OutputLength];
        var dx = new float[ps.InputLength];
        var logits = ConvTests.Random(64 * 10, 2); var d = new float[640]; var labels = new int[64];
        var a = ConvTests.Random(1000, 3); var b = new float[1000];
        void Step()
        {
            Pool2d.MaxForward(ps, x, y, arg); Pool2d.MaxBackward(ps, y, arg, dx);
            Pool2d.AvgForward(ps, x, y); Pool2d.AvgBackward(ps, y, dx);
            Softmax.CrossEntropyBackward(logits, labels, d, 64, 10, 1f / 64);
            Elementwise.Gelu(a, b); Elementwise.GeluBackward(a, b, b); Elementwise.Axpy(0.1f, a, b);
            Reductions.SumFixed(a);
        }
        int saved = Compute.Threads;
        try
        {
            foreach (int t in new[] { 1, 2 })
            {
                Compute.Threads = t;
                for (int i = 0; i < 3; i++) Step();
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 3; i++) Step();
                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            }
        }
        finally { Compute.Threads = saved; }
    }
}
