// `disttrain samples`: pictures of what a trained generative model does, as PNG grids beside the checkpoint —
// reconstructions of test images (any model whose output is an image of its input's size: autoencoders, the VAE)
// and, for a model with a reparameterize layer, samples decoded from z ~ N(0, I) and a traversal of the first two
// latent dimensions over [−3, 3]² (the others 0). Outputs of a bce_with_logits model are logits: shown through σ.
using System.CommandLine;
using DistTrain.Cli.Images;
using DistTrain.Cli.Training;
using DistTrain.Nn;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class SamplesCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "A model.safetensors written by `disttrain train`.", Required = true };
        var dataset = new Option<string?>("--dataset", "-d") { Description = "Dataset spec whose test images are reconstructed (default: the checkpoint's)." };
        var output = new Option<string?>("--out", "-o") { Description = "Folder for the PNGs (default: the checkpoint's folder)." };
        var count = new Option<int>("--count") { Description = "Images per grid (reconstructions: this many originals, each above its reconstruction).", DefaultValueFactory = _ => 32 };
        var seed = new Option<int>("--seed") { Description = "Seed of the latent draws.", DefaultValueFactory = _ => 1 };
        var cmd = new Command("samples", "Write PNG grids of a generative model: reconstructions; for a VAE also samples and a 2-D latent traversal.")
            { checkpoint, dataset, output, count, seed };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var file = r.GetValue(checkpoint)!;
            if (!File.Exists(file)) throw new ArgumentException($"--checkpoint {file} does not exist.");
            int n = r.GetValue(count);
            if (n is < 1 or > 1024) throw new ArgumentException($"--count must be between 1 and 1024, not {n}.");
            var info = Checkpoint.ReadInfo(file);
            var spec = ModelSpec.Parse(info.ModelSpec);
            if (spec.Input.Length != 3 || spec.Input[0] != 1)
                throw new ArgumentException($"Model {spec.Name} takes {Tensor.ShapeString(spec.Input)}; `samples` draws single-channel images (1,H,W).");
            int h = spec.Input[1], w = spec.Input[2];
            var model = spec.Build();
            Checkpoint.LoadInto(model.Store, file);
            bool logits = spec.Loss == "bce_with_logits";
            var outDir = r.GetValue(output) ?? Path.GetDirectoryName(Path.GetFullPath(file))!;
            int written = 0;

            if (model.OutputShape.Aggregate(1, (a, b) => a * b) == h * w)
            {
                var datasetSpec = r.GetValue(dataset) ?? EvalCommandDataset(info) ??
                    throw new ArgumentException($"Checkpoint {file} does not record its dataset; give --dataset.");
                var (_, test) = LocalRun.LoadData(datasetSpec, spec);
                int k = Math.Min(n, test.Count);
                var x = new Tensor([k, .. spec.Input]);
                test.Gather(Enumerable.Range(0, k).ToArray(), x, new int[k]);
                var y = model.Forward(x, StepContext.Eval);
                var images = new List<float[]>();
                for (int row = 0; row < k; row += 8)
                {
                    int cols = Math.Min(8, k - row);
                    for (int i = row; i < row + cols; i++) images.Add(x.Span.Slice(i * h * w, h * w).ToArray());
                    for (int i = row; i < row + cols; i++) images.Add(Pixels(y.Span.Slice(i * h * w, h * w), logits));
                }
                Save(Path.Combine(outDir, "reconstructions.png"), images, h, w, Math.Min(8, k), ref written);
            }

            int r0 = model.Layers.ToList().FindIndex(l => l is Reparameterize);
            if (r0 >= 0)
            {
                var rep = (Reparameterize)model.Layers[r0];
                int z = rep.LatentSize;
                var eps = new float[n * z];
                Reparameterize.FillNormal(eps, n, z, SplitMix.Mix((ulong)(uint)r.GetValue(seed)));
                Save(Path.Combine(outDir, "samples.png"), Decode(model, r0, eps, n, z, h, w, logits), h, w, 8, ref written);
                const int side = 15;
                var grid = new float[side * side * z];
                for (int i = 0; i < side; i++)
                    for (int j = 0; j < side; j++)
                    {
                        grid[(i * side + j) * z] = -3f + 6f * j / (side - 1);
                        if (z > 1) grid[(i * side + j) * z + 1] = 3f - 6f * i / (side - 1);
                    }
                Save(Path.Combine(outDir, "latent-traversal.png"), Decode(model, r0, grid, side * side, z, h, w, logits), h, w, side, ref written);
            }
            if (written == 0)
                throw new ArgumentException($"Model {spec.Name} neither reconstructs its input (output {Tensor.ShapeString(model.OutputShape)}) nor has a reparameterize layer: nothing to draw.");
            return 0;
        }));
        return cmd;
    }

    /// <summary>The layers after the reparameterize layer, run on given latents.</summary>
    private static List<float[]> Decode(Sequential model, int reparameterize, float[] z, int n, int zSize, int h, int w, bool logits)
    {
        var t = new Tensor(z, 0, n, zSize);
        for (int i = reparameterize + 1; i < model.Layers.Count; i++) t = model.Layers[i].Forward(t, StepContext.Eval);
        return Enumerable.Range(0, n).Select(i => Pixels(t.Span.Slice(i * h * w, h * w), logits)).ToList();
    }

    private static float[] Pixels(ReadOnlySpan<float> v, bool logits)
    {
        var p = v.ToArray();
        if (logits) for (int i = 0; i < p.Length; i++) p[i] = 1f / (1f + MathF.Exp(-p[i]));
        return p;
    }

    private static void Save(string file, List<float[]> images, int h, int w, int columns, ref int written)
    {
        ImageGrid.Write(file, images, h, w, columns);
        Console.WriteLine($"wrote {file} ({images.Count} images)");
        written++;
    }

    private static string? EvalCommandDataset(CheckpointInfo info)
    {
        if (!info.Extra.TryGetValue("job", out var job)) return null;
        try { return System.Text.Json.JsonSerializer.Deserialize<DistTrain.Training.TrainJob>(job)?.Dataset; }
        catch (System.Text.Json.JsonException) { return null; }
    }
}
