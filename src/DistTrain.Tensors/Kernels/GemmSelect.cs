// Which micro-kernel each SIMD path uses (tile shapes chosen by `disttrain bench gemm`; see docs/benchmarks.md).
namespace DistTrain.Tensors.Kernels;

internal static unsafe partial class GemmKernels
{
    private static readonly string? env = Environment.GetEnvironmentVariable("DISTTRAIN_GEMM_KERNEL");

    public static MicroKernel Select(SimdPath path)
    {
        return path switch
        {
            SimdPath.Avx512 => new MicroKernel(8, 32, &Avx512_8x32),
            SimdPath.Avx2 => env switch
            {
                "4x24" => new MicroKernel(4, 24, &Avx2_4x24),
                "5x16" => new MicroKernel(5, 16, &Avx2_5x16),
                _ => new MicroKernel(6, 16, &Avx2_6x16),
            },
            _ => new MicroKernel(4, 2 * W, &Portable_4x2W),
        };
    }
}
