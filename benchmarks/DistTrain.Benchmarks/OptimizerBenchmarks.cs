// Optimizer update and exact gradient-norm throughput over a 1M-parameter flat span, per SIMD path:
// `dotnet run -c Release --project benchmarks/DistTrain.Benchmarks -- --filter '*OptimizerBenchmarks*' --job short`.
using BenchmarkDotNet.Attributes;
using DistTrain.Nn.Optimizers;
using DistTrain.Tensors;

namespace DistTrain.Benchmarks;

[MemoryDiagnoser]
public class OptimizerBenchmarks
{
    private const int N = 1 << 20;
    private float[] _p = [], _g = [];
    private Optimizer _opt = null!;
    private IDisposable? _path;
    private long _t;

    [Params("sgd", "momentum", "adam", "adamw")]
    public string Name { get; set; } = "adam";

    [Params(SimdPath.Portable, SimdPath.Avx2, SimdPath.Avx512)]
    public SimdPath Path { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _path = Simd.Force(Path);
        var r = new Random(1);
        _p = new float[N];
        _g = new float[N];
        for (int i = 0; i < N; i++) { _p[i] = (float)r.NextDouble(); _g[i] = (float)(r.NextDouble() - 0.5) * 1e-3f; }
        _opt = OptimizerFactory.Create(Name, N);
    }

    [GlobalCleanup]
    public void Cleanup() => _path?.Dispose();

    [Benchmark]
    public void Step() => _opt.Step(_p, _g, 1e-6f, ++_t);

    [Benchmark]
    public double ExactSumOfSquares() => GradientClipping.SumOfSquares(_g);
}
