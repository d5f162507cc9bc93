// BenchmarkDotNet harness (not part of `dotnet test`): `dotnet run -c Release --project benchmarks/DistTrain.Benchmarks -- --filter '*'`.
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
