// Samples to label, read from a file and laid out in a model's input shape: an IDX image file (plain or
// gzip), a CSV (the label column, when present, is kept for an accuracy), or a PNG image. Pixels become
// [0, 1] as in training; a PNG whose size differs from the model's is refused with both shapes named.
using DistTrain.Data.Sources;
using DistTrain.Nn.Models;
using DistTrain.Tensors;
using SkiaSharp;

namespace DistTrain.Cli.Evaluation;

public sealed record PredictInput(string Source, string Kind, float[] Features, int Count, int[]? Labels)
{
    /// <summary>Reads <paramref name="path"/>, telling the format by its first bytes (PNG, IDX, gzip) and else by its .csv name.</summary>
    public static PredictInput Read(string path, ModelSpec spec, string labelColumn = "label")
    {
        if (!File.Exists(path)) throw new ArgumentException($"--input {path} does not exist; give an IDX, CSV or PNG file.");
        var head = new byte[8];
        using (var f = File.OpenRead(path)) f.ReadExactly(head, 0, (int)Math.Min(8, f.Length));
        if (head is [0x89, (byte)'P', (byte)'N', (byte)'G', ..]) return Png(path, spec);
        if (head is [0x1f, 0x8b, ..] or [0, 0, 0x08, 0x03, ..]) return Idx(path, spec);
        if (head is [0, 0, 0x08, 0x01, ..])
            throw new ArgumentException($"{path} is an IDX label file; give the image file (…-images-idx3-ubyte) as --input.");
        if (!path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) && !path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{path} is neither a PNG, an IDX image file nor a .csv file.");
        return Csv(path, spec, labelColumn);
    }

    static int Length(int[] shape) => shape.Aggregate(1, (a, b) => a * b);

    static PredictInput Idx(string path, ModelSpec spec)
    {
        var images = IdxReader.ReadImages(path);
        int per = images.Rows * images.Cols;
        if (per != Length(spec.Input))
            throw new ArgumentException($"{path} holds images of {images.Rows}×{images.Cols} (shape {Tensor.ShapeString([1, images.Rows, images.Cols])}) " +
                                        $"but model {spec.Name} takes {Tensor.ShapeString(spec.Input)}.");
        var x = new float[images.Pixels.Length];
        for (int i = 0; i < x.Length; i++) x[i] = images.Pixels[i] / 255f; // as IdxReader scales training images
        return new PredictInput(path, "idx", x, images.Count, null);
    }

    static PredictInput Csv(string path, ModelSpec spec, string labelColumn)
    {
        var table = CsvReader.ReadTable(path, labelColumn);
        if (table.FeatureNames.Length != Length(spec.Input))
            throw new ArgumentException($"{path} has {table.FeatureNames.Length} feature columns (besides '{labelColumn}') but model {spec.Name} takes " +
                                        $"{Tensor.ShapeString(spec.Input)}, {Length(spec.Input)} values; give the columns the model was trained on, in the same order.");
        return new PredictInput(path, "csv", table.Features, table.Rows, table.Labels);
    }

    static PredictInput Png(string path, ModelSpec spec)
    {
        // (C,H,W) with C = 1 (grey) or 3 (RGB); any other input shape takes a grey image of as many pixels.
        var input = spec.Input;
        bool chw = input.Length == 3 && input[0] is 1 or 3;
        using var bmp = SKBitmap.Decode(path) ?? throw new ArgumentException($"{path} is not a PNG image that can be decoded.");
        int channels = chw ? input[0] : 1;
        bool fits = chw ? bmp.Height == input[1] && bmp.Width == input[2] : bmp.Width * bmp.Height == Length(input);
        if (!fits)
        {
            var want = chw ? $"{input[2]}×{input[1]} pixels, {(channels == 1 ? "grey" : "RGB")}" : $"{Length(input)} pixels";
            throw new ArgumentException($"Image {path} is {bmp.Width}×{bmp.Height} pixels (shape {Tensor.ShapeString([channels, bmp.Height, bmp.Width])}) " +
                                        $"but model {spec.Name} takes {Tensor.ShapeString(input)} ({want}); resize the image to the model's size.");
        }
        int hw = bmp.Width * bmp.Height;
        var x = new float[channels * hw];
        for (int y = 0; y < bmp.Height; y++)
            for (int col = 0; col < bmp.Width; col++)
            {
                var c = bmp.GetPixel(col, y);
                float alpha = c.Alpha / 255f; // transparent pixels count as black, the background of MNIST-style images
                int i = y * bmp.Width + col;
                if (channels == 1) x[i] = (0.299f * c.Red + 0.587f * c.Green + 0.114f * c.Blue) / 255f * alpha;
                else { x[i] = c.Red / 255f * alpha; x[hw + i] = c.Green / 255f * alpha; x[2 * hw + i] = c.Blue / 255f * alpha; }
            }
        return new PredictInput(path, "png", x, 1, null);
    }
}
