// libtorch's ConvTranspose2d (TorchSharp-cpu, as ../shared/peers/torchsharp) forward + backward at the same shapes and
// with the same counting and clean-rep rule as ../Program.cs.
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

const int batch = 64;
torch.set_num_threads(1);
torch.set_num_interop_threads(1);
torch.manual_seed(42);
foreach (var s in Shapes.All)
{
    using var conv = ConvTranspose2d(s.Cin, s.Cout, s.K, stride: s.Stride, padding: s.Pad, output_padding: s.OutPad);
    using var x = torch.randn(batch, s.Cin, s.Hw, s.Hw).requires_grad_(true);
    void Step()
    {
        using var scope = torch.NewDisposeScope();
        conv.zero_grad(); if (x.grad is not null) x.grad.zero_();
        var y = conv.forward(x);
        y.sum().backward();
    }
    for (int i = 0; i < 3; i++) Step();
    var sw = Stopwatch.StartNew(); int it = 0;
    while (sw.Elapsed.TotalSeconds < 0.2) { Step(); it++; }
    int iters = Math.Max(1, (int)(it * 0.5 / sw.Elapsed.TotalSeconds));
    string stat = Clean.Measure(() => { for (int i = 0; i < iters; i++) Step(); return Shapes.Flop(batch, s) * iters / 1e9; }, wantClean: 5);
    Console.WriteLine($"RESULT libtorch convt threads=1 batch={batch} cin={s.Cin} cout={s.Cout} hw={s.Hw} k={s.K} stride={s.Stride} pad={s.Pad} outpad={s.OutPad} fwd+bwd GFLOPs {stat}");
}
