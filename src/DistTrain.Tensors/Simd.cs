// Which SIMD instruction set the kernels use. Tests force the narrower paths so that AVX2 and
// portable code run on an AVX-512 machine; results are bit-identical across paths (DESIGN contract 2).
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Tensors;

public enum SimdPath { Portable = 0, Avx2 = 1, Avx512 = 2 }

public static class Simd
{
    /// <summary>The widest path this machine supports.</summary>
    public static SimdPath Best { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? SimdPath.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? SimdPath.Avx2
        : SimdPath.Portable;

    private static SimdPath _path = Best;

    /// <summary>The path kernels use now. Set it to force a narrower path (never wider than <see cref="Best"/>).</summary>
    public static SimdPath Path
    {
        get => _path;
        set => _path = value > Best ? Best : value;
    }

    /// <summary>Forces a path until the returned scope is disposed (for tests and benchmarks).</summary>
    public static IDisposable Force(SimdPath path)
    {
        var previous = _path;
        Path = path;
        return new Restore(previous);
    }

    private sealed class Restore(SimdPath previous) : IDisposable
    {
        public void Dispose() => _path = previous;
    }
}

/// <summary>How many threads compute kernels may use. Results never depend on it (contract 2).</summary>
public static class Compute
{
    private static int _threads = 1;

    public static int Threads
    {
        get => _threads;
        set => _threads = value < 1 ? throw new ArgumentOutOfRangeException(nameof(value), value, "Threads must be at least 1.") : value;
    }
}
