// Which micro-kernel each SIMD path uses. Tiles fill the register file: accumulators + the B vectors of
// one k step + one broadcast of A, and MR x NR FMAs per k step hide the FMA latency on two pipes.
namespace DistTrain.Tensors.Kernels;

internal static unsafe partial class GemmKernels
{
    public static MicroKernel Select(SimdPath path) => path switch
    {
        // 32 zmm: 16 accumulators + 2 B + 1 A; 8 rows divide the batch sizes training uses (64, 256).
        SimdPath.Avx512 => new MicroKernel(8, 32, &Avx512_8x32),
        // 16 ymm: 12 accumulators + 2 B + 1 A (the BLIS Haswell/Zen tile).
        SimdPath.Avx2 => new MicroKernel(6, 16, &Avx2_6x16),
        // Vector<T> is 256-bit on x64 and 128-bit on Arm64 (32 registers): the same 6 x 2-vector tile fits both.
        _ => new MicroKernel(6, 2 * W, &Portable_6x2W),
    };
}
