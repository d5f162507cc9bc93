// ConvTranspose2d forward + backward (input, weight and bias gradients), batch 64, one compute thread, at the shapes in
// Shapes.cs; GFLOP/s as Shapes.Flop, the median of clean reps (Clean.cs: a rep is clean when other processes used under
// 0.1 core during it). run.sh runs this and the libtorch side (peer/) in the same sitting.
using DistTrain.Nn;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;

const int batch = 64;
Compute.Threads = 1;
foreach (var s in Shapes.All)
{
    var layer = new ConvTranspose2d(s.Cin, s.Cout, s.K, s.Stride, s.Pad, s.OutPad);
    var model = new Sequential([s.Cin, s.Hw, s.Hw], [layer]) { InputGrad = true };
    var rng = new Random(1);
    var x = new Tensor([batch, s.Cin, s.Hw, s.Hw]);
    for (int i = 0; i < x.Length; i++) x.Span[i] = (float)(rng.NextDouble() * 2 - 1);
    var dy = new Tensor([batch, .. model.OutputShape]);
    dy.Span.Fill(1f);   // d(sum)/dy = ones, as the peer's y.sum().backward()
    void Step()
    {
        model.ZeroGrad();
        model.Forward(x, new StepContext(true));
        model.Backward(dy);
    }
    for (int i = 0; i < 3; i++) Step();
    var sw = System.Diagnostics.Stopwatch.StartNew(); int it = 0;
    while (sw.Elapsed.TotalSeconds < 0.2) { Step(); it++; }
    int iters = Math.Max(1, (int)(it * 0.5 / sw.Elapsed.TotalSeconds));
    string stat = Clean.Measure(() => { for (int i = 0; i < iters; i++) Step(); return Shapes.Flop(batch, s) * iters / 1e9; }, wantClean: 5);
    Console.WriteLine($"RESULT disttrain convt threads=1 batch={batch} cin={s.Cin} cout={s.Cout} hw={s.Hw} k={s.K} stride={s.Stride} pad={s.Pad} outpad={s.OutPad} fwd+bwd GFLOPs {stat}");
}
