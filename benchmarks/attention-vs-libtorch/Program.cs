// DistTrain's side of the comparison with libtorch's nn.MultiheadAttention (peer/): for every case in Cases.cs it
// builds our MultiheadAttention (self-attention, batch first), moves the weights away from the init so that both
// biases are non-zero and some softmax rows are peaked, runs forward and backward on a random input and upstream
// gradient, and writes the inputs, weights and our results (little-endian float32, row-major) to DIR/<case>/.
//   dotnet bin/Release/net10.0/attention-vs-libtorch.dll DIR
using DistTrain.Nn;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;

string root = args.Length > 0 ? args[0] : "attention-cases";
Compute.Threads = 1;
foreach (var c in Cases.All)
{
    var attn = new MultiheadAttention(c.E, c.H);
    var model = new Sequential([c.T, c.E], [("attn", (Layer)attn)], seed: 7) { InputGrad = true };
    var rng = new Random(c.T * 1000 + c.E);
    float U(double a) => (float)((rng.NextDouble() * 2 - 1) * a);
    foreach (ref var v in model.Store.Values.AsSpan()) v += U(0.3);
    var x = new Tensor(c.B, c.T, c.E);
    for (int i = 0; i < x.Length; i++) x[i] = U(2);
    var dy = new Tensor(c.B, c.T, c.E);
    for (int i = 0; i < dy.Length; i++) dy[i] = U(1);

    model.ZeroGrad();
    var y = model.Forward(x, new StepContext(true)).ToArray();
    var dx = model.Backward(dy).ToArray();

    string dir = Cases.Dir(root, c);
    Directory.CreateDirectory(dir);
    Cases.Write(dir, "x", x.Span);
    Cases.Write(dir, "dy", dy.Span);
    Cases.Write(dir, "y", y);
    Cases.Write(dir, "dx", dx);
    foreach (var p in model.Store.All)
    {
        string local = p.Name["attn.".Length..];
        Cases.Write(dir, local, p.Value.Span);
        Cases.Write(dir, "grad." + local, p.Grad.Span);
    }
    Console.WriteLine($"wrote {dir}");
}
