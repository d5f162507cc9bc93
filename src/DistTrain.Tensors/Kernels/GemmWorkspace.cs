// Per-thread SGEMM packing buffers: pinned, 64-byte aligned, grown on demand and then reused, so a
// steady-state call allocates nothing on the managed heap.
namespace DistTrain.Tensors.Kernels;

internal sealed unsafe class GemmWorkspace
{
    [ThreadStatic] private static GemmWorkspace? _current;

    private float[] _a = [], _b = [], _b2 = [];
    public float* PackedA { get; private set; }
    public float* PackedB { get; private set; }

    /// <summary>A second packed-B buffer of the same size, for a team that packs one K block while it computes the previous.</summary>
    public float* SecondPackedB()
    {
        if (_b2.Length < _b.Length) _packedB2 = Allocate(_b.Length - 16, out _b2);
        return _packedB2;
    }

    private float* _packedB2;

    public static GemmWorkspace ForThread(int mr, int nr)
    {
        var ws = _current ??= new GemmWorkspace();
        ws.Ensure(RoundUp(Gemm.MC, mr) * Gemm.KCMax, RoundUp(Gemm.NC, nr) * Gemm.KCMax);
        return ws;
    }

    private static int RoundUp(int x, int unit) => (x + unit - 1) / unit * unit;

    private void Ensure(int aFloats, int bFloats)
    {
        if (_a.Length < aFloats + 16) PackedA = Allocate(aFloats, out _a);
        if (_b.Length < bFloats + 16) PackedB = Allocate(bFloats, out _b);
    }

    // Pinned (POH) so the raw pointer stays valid; aligned up to a cache line for the kernel's loads.
    private static float* Allocate(int floats, out float[] array)
    {
        array = GC.AllocateUninitializedArray<float>(floats + 16, pinned: true);
        fixed (float* p = array)
            return (float*)(((nint)p + 63) & ~(nint)63);
    }
}
