// libtorch's side (TorchSharp-cpu 0.107.0, as ../shared/peers/torchsharp): for every case DistTrain wrote, loads the
// same weights into torch.nn.MultiheadAttention (query = key = value = x, no mask, dropout 0), runs forward and
// backward with the same upstream gradient, once in float32 and once in float64, and prints per tensor the largest
// absolute difference of DistTrain's float32 result and of libtorch's float32 result from libtorch's float64 result,
// and of the two float32 results from each other, each also relative to the largest magnitude of the tensor.
//   dotnet bin/Release/net10.0/AttentionPeer.dll DIR
using TorchSharp;
using static TorchSharp.torch;

string root = args.Length > 0 ? args[0] : "attention-cases";
torch.set_num_threads(1);
torch.set_num_interop_threads(1);
double worstRel = 0;
foreach (var c in Cases.All)
{
    string dir = Cases.Dir(root, c);
    var f32 = Run(dir, c, ScalarType.Float32);
    var f64 = Run(dir, c, ScalarType.Float64);
    Console.WriteLine($"case B={c.B} T={c.T} E={c.E} H={c.H}");
    Console.WriteLine($"  {"tensor",-22} {"max|ref|",10} {"ours-f64",10} {"torch32-f64",12} {"ours-torch32",12} {"rel ours-torch32",17}");
    foreach (var name in Cases.Results)
    {
        var ours = Cases.Read(dir, name).Select(v => (double)v).ToArray();
        var r64 = f64[name]; var r32 = f32[name];
        double scale = r64.Max(Math.Abs);
        double dOurs = MaxDiff(ours, r64), dTorch = MaxDiff(r32, r64);
        double dPair = MaxDiff(ours, r32);
        worstRel = Math.Max(worstRel, dPair / scale);
        Console.WriteLine($"  {name,-22} {scale,10:E2} {dOurs,10:E2} {dTorch,12:E2} {dPair,12:E2} {dPair / scale,17:E2}");
    }
}
Console.WriteLine($"RESULT attention ours vs libtorch MultiheadAttention (float32): largest difference relative to the tensor's largest magnitude {worstRel:E2}");

static double MaxDiff(double[] a, double[] b) { double m = 0; for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i])); return m; }

static Dictionary<string, double[]> Run(string dir, (int B, int T, int E, int H) c, ScalarType type)
{
    using var scope = torch.NewDisposeScope();
    Tensor Load(string name, params long[] shape) => torch.tensor(Cases.Read(dir, name), shape).to(type);
    var mha = torch.nn.MultiheadAttention(c.E, c.H, dropout: 0.0);
    mha.to(type);
    using (torch.no_grad())
    {
        var ps = mha.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        ps["in_proj_weight"].copy_(Load("in_proj_weight", 3 * c.E, c.E));
        ps["in_proj_bias"].copy_(Load("in_proj_bias", 3 * c.E));
        ps["out_proj.weight"].copy_(Load("out_proj.weight", c.E, c.E));
        ps["out_proj.bias"].copy_(Load("out_proj.bias", c.E));
    }
    mha.eval();   // dropout is 0 anyway; eval keeps any fast path from changing the arithmetic between runs
    // TorchSharp's MultiheadAttention is sequence-first: (T,B,E).
    var x = Load("x", c.B, c.T, c.E).transpose(0, 1).contiguous().requires_grad_(true);
    var dy = Load("dy", c.B, c.T, c.E).transpose(0, 1);
    var (y, _) = mha.forward(x, x, x, null, false, null);
    y.backward(new[] { dy });
    double[] D(Tensor t) => t.to(ScalarType.Float64).contiguous().data<double>().ToArray();
    var grads = mha.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
    return new Dictionary<string, double[]>
    {
        ["y"] = D(y.transpose(0, 1)),
        ["dx"] = D(x.grad!.transpose(0, 1)),
        ["grad.in_proj_weight"] = D(grads["in_proj_weight"]),
        ["grad.in_proj_bias"] = D(grads["in_proj_bias"]),
        ["grad.out_proj.weight"] = D(grads["out_proj.weight"]),
        ["grad.out_proj.bias"] = D(grads["out_proj.bias"]),
    };
}
