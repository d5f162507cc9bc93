// `disttrain bench elementwise`: GB/s and Gelem/s of the elementwise ops, softmax cross-entropy and
// fixed-order reductions at a few lengths (operator structs vs TensorPrimitives where both exist).
using System.CommandLine;
using System.Diagnostics;
using System.Numerics.Tensors;
using DistTrain.Cli.Bench;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Cli.Commands;

public sealed class BenchElementwiseCommand : ICommandFactory
{
    public string? Parent => "bench";

    public Command Create()
    {
        var json = new Option<bool>("--json") { Description = "One JSON object per measurement per line." };
        var threads = new Option<int>("--threads") { Description = "Compute threads (elementwise ops run on the calling thread).", DefaultValueFactory = _ => 1 };
        var cmd = new Command("elementwise", "Elementwise ops, softmax cross-entropy and reductions: Gelem/s and GB/s.");
        cmd.Options.Add(json); cmd.Options.Add(threads);
        cmd.SetAction(r => Run(r.GetValue(json), r.GetValue(threads)));
        return cmd;
    }

    private static int Run(bool json, int threads)
    {
        if (threads < 1) { Console.Error.WriteLine("--threads must be at least 1."); return 2; }
        Compute.Threads = threads;
        var output = new BenchOutput(json);
        output.Note($"Elementwise on {Simd.Path}; median of clean reps (others < 0.1 core), else of all");
        foreach (int n in new[] { 4096, 1 << 20 })
        {
            var rnd = new Random(1);
            float[] x = new float[n], dy = new float[n], o = new float[n];
            for (int i = 0; i < n; i++) { x[i] = (float)(rnd.NextDouble() * 8 - 4); dy[i] = (float)(rnd.NextDouble() - 0.5); }
            int rows = n / 10; var labels = new int[rows];
            for (int r = 0; r < rows; r++) labels[r] = r % 10;
            var cases = new (string name, int streams, Action body)[]
            {
                ("relu.tensorprimitives", 2, () => Elementwise.Relu(x, o)),
                ("relu_backward", 3, () => Elementwise.ReluBackward(x, dy, o)),
                ("leaky_relu", 2, () => Elementwise.LeakyRelu(x, o, 0.01f)),
                ("gelu", 2, () => Elementwise.Gelu(x, o)),
                ("gelu_backward", 3, () => Elementwise.GeluBackward(x, dy, o)),
                ("sigmoid.tensorprimitives", 2, () => TensorPrimitives.Sigmoid(x, o)),
                ("sigmoid_backward", 3, () => Elementwise.SigmoidBackward(x, dy, o)),
                ("tanh.tensorprimitives", 2, () => TensorPrimitives.Tanh(x, o)),
                ("exp.fastexp", 2, () => Elementwise.Exp(x, o)),
                ("exp.tensorprimitives", 2, () => TensorPrimitives.Exp(x, o)),
                ("axpy", 3, () => Elementwise.Axpy(0.5f, x, o)),
                ("add.tensorprimitives", 3, () => TensorPrimitives.Add(x, dy, o)),
                ("sum.fixed_order", 1, () => Reductions.SumFixed(x)),
                ("sum.tensorprimitives", 1, () => TensorPrimitives.Sum(x)),
                ("softmax_xent_backward(rows,10)", 2, () => Softmax.CrossEntropyBackward(x.AsSpan(0, rows * 10), labels, o.AsSpan(0, rows * 10), rows, 10, 1f / rows)),
            };
            foreach (var (name, streams, body) in cases)
            {
                var m = BenchConvCommand.Measure(body, n, 5);   // "flops" = elements, so gflops = Gelem/s
                output.Add(new Dictionary<string, object?>
                {
                    ["kernel"] = name, ["n"] = n, ["threads"] = threads, ["gelem_per_s"] = m["gflops"],
                    ["gb_per_s"] = (double)m["gflops"]! * 4 * streams, ["clean"] = m["clean"],
                    ["alloc_bytes_per_call"] = m["alloc_bytes_per_call"],
                });
            }
        }
        output.Flush();
        return 0;
    }
}
