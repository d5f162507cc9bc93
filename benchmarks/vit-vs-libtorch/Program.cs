// libtorch's side (TorchSharp-cpu 0.107.0, as ../shared/peers/torchsharp) of the `vit` preset's training throughput:
// the same model as the preset, built from libtorch modules with the written-out attention of the shared peer's
// VitNet, trained on random data exactly as the shared peer measures mlp/cnn/lstm/vit (SGD 0.01, cross-entropy,
// median samples/s of clean reps of ~1 s, Clean.cs). run.sh runs `disttrain bench train --model vit` beside it.
//   TsVit <threads> [batch...]
using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

int threads = int.Parse(args[0]);
var batches = args.Length > 1 ? args.Skip(1).Select(int.Parse).ToArray() : [64, 256];
torch.set_num_threads(threads);
torch.set_num_interop_threads(1);
foreach (int batch in batches)
{
    torch.manual_seed(1);
    var model = new VitPreset();
    var opt = torch.optim.SGD(model.parameters(), 0.01);
    var lossFn = CrossEntropyLoss();
    using var x = torch.randn(batch, 1, 28, 28);
    using var y = torch.randint(0, 10, new long[] { batch }, dtype: ScalarType.Int64);
    double lastLoss = 0;
    void Step()
    {
        using var scope = torch.NewDisposeScope();
        opt.zero_grad();
        var loss = lossFn.forward(model.forward(x), y);
        loss.backward();
        opt.step();
        lastLoss = loss.item<float>();
    }
    for (int i = 0; i < 5; i++) Step();
    var sw = Stopwatch.StartNew(); int it = 0;
    while (sw.Elapsed.TotalSeconds < 0.5) { Step(); it++; }
    int iters = Math.Max(2, (int)(it * 1.0 / sw.Elapsed.TotalSeconds));
    string stat = Clean.Measure(() => { for (int i = 0; i < iters; i++) Step(); return (double)iters * batch; }, wantClean: 5);
    long nparams = model.parameters().Sum(p => p.numel());
    Console.WriteLine($"RESULT train model=vit threads={threads} batch={batch} params={nparams} steps/rep={iters} samples_per_s {stat} loss={lastLoss:F3}");
    model.Dispose(); opt.Dispose();
}

// The `vit` preset: two 3x3 stride-2 convolutions with ReLU (1-32-64 channels, 28x28 -> 7x7), each of the 49 positions
// a token, a linear embedding 64-64, a class token, learned positions, two pre-norm blocks (4 heads, GELU MLP 128),
// LayerNorm of the class token and a linear head.
class VitPreset : Module<Tensor, Tensor>
{
    const int Dim = 64, Heads = 4, Depth = 2, Mlp = 128, Tokens = 49;
    readonly Conv2d stem1 = Conv2d(1, 32, 3, stride: 2, padding: 1), stem2 = Conv2d(32, 64, 3, stride: 2, padding: 1);
    readonly Linear embed = Linear(64, Dim), head = Linear(Dim, 10);
    readonly Parameter cls = Parameter(torch.zeros(1, 1, Dim)), pos = Parameter(torch.randn(1, Tokens + 1, Dim) * 0.02);
    readonly ModuleList<Module<Tensor, Tensor>> blocks = new();
    readonly LayerNorm norm = LayerNorm(Dim);
    public VitPreset() : base("VitPreset")
    {
        for (int i = 0; i < Depth; i++) blocks.Add(new VitBlock(Dim, Heads, Mlp));
        RegisterComponents();
    }
    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0];
        var s = torch.nn.functional.relu(stem2.forward(torch.nn.functional.relu(stem1.forward(x))));   // (B,64,7,7)
        var t = s.flatten(2).transpose(1, 2);                                                             // (B,49,64)
        var h = torch.cat(new[] { cls.expand(b, 1, Dim), embed.forward(t) }, 1) + pos;
        foreach (var blk in blocks) h = blk.forward(h);
        return head.forward(norm.forward(h.select(1, 0)));
    }
}

// The shared peer's pre-norm block: LN, qkv projection, softmax(QK^T/sqrt(d))V, projection, residual; LN, GELU MLP, residual.
class VitBlock : Module<Tensor, Tensor>
{
    readonly int dim, heads;
    readonly LayerNorm ln1, ln2;
    readonly Linear qkv, proj, fc1, fc2;
    public VitBlock(int dim, int heads, int mlp) : base("VitBlock")
    {
        this.dim = dim; this.heads = heads;
        ln1 = LayerNorm(dim); qkv = Linear(dim, 3 * dim); proj = Linear(dim, dim);
        ln2 = LayerNorm(dim); fc1 = Linear(dim, mlp); fc2 = Linear(mlp, dim);
        RegisterComponents();
    }
    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], t = x.shape[1]; int dh = dim / heads;
        var q3 = qkv.forward(ln1.forward(x)).view(b, t, 3, heads, dh).permute(2, 0, 3, 1, 4);   // (3,B,H,T,dh)
        var att = torch.nn.functional.softmax(torch.matmul(q3[0], q3[1].transpose(-2, -1)) / Math.Sqrt(dh), -1);
        var a = torch.matmul(att, q3[2]).transpose(1, 2).reshape(b, t, dim);
        x = x + proj.forward(a);
        return x + fc2.forward(torch.nn.functional.gelu(fc1.forward(ln2.forward(x))));
    }
}
