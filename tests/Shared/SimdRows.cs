// One test row per SIMD path (Portable, Avx2, Avx512) on every machine: a path this CPU lacks reports as skipped with
// the reason, instead of vanishing from the results or passing silently on a narrower path (Simd.Force clamps to
// Simd.Best). Linked into each test project that forces Simd.Path; rows run as [SkippableTheory] (Xunit.SkippableFact).
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Tests;

public static class SimdRows
{
    public static readonly SimdPath[] All = [SimdPath.Portable, SimdPath.Avx2, SimdPath.Avx512];

    /// <summary>A row per path, for a test that checks each path against a reference.</summary>
    public static IEnumerable<object[]> Paths() => All.Select(p => new object[] { p });

    /// <summary>A row per vector path (Avx2, Avx512), for a test that compares a path's bits with the portable path's.</summary>
    public static IEnumerable<object[]> VectorPaths() => All.Where(p => p != SimdPath.Portable).Select(p => new object[] { p });

    /// <summary>Each of <paramref name="rows"/> once per path, the path appended as the last argument.</summary>
    public static IEnumerable<object[]> Cross(IEnumerable<object[]> rows, IEnumerable<SimdPath>? paths = null) =>
        rows.SelectMany(r => (paths ?? All).Select(p => r.Append(p).ToArray()));

    /// <summary>Skips the row, with the reason, unless this CPU runs <paramref name="path"/>.</summary>
    public static void Require(SimdPath path) =>
        Skip.If(path > Simd.Best, $"{path} is not supported by this CPU (best: {Simd.Best}); this row runs on a machine that has it");

    /// <summary><see cref="Require"/>, then runs the kernels on <paramref name="path"/> until the scope is disposed
    /// (which restores the previous path).</summary>
    public static IDisposable Force(SimdPath path)
    {
        Require(path);
        return Simd.Force(path);
    }
}
