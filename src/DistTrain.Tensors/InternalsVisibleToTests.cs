// The kernel tests check internal planning helpers (GemmJob.NextTile) directly, not only through Gemm.Sgemm.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("DistTrain.Tensors.Tests")]
