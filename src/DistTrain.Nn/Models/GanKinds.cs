// The `gan` layer kind: a generator and a discriminator, each a list of named layers chained as a block's nodes are
// ("inputs" optional), in one layer whose input is the real samples (Layers.GanPair). The generator maps "latent" values
// to the samples' shape; the discriminator maps a sample to one logit. Each is its own optimizer group, with its
// learning rate the schedule's times "generator_lr_scale" / "discriminator_lr_scale" (default 1).
using System.Text.Json;
using DistTrain.Nn.Layers;
using static DistTrain.Nn.Models.ModelSpec;

namespace DistTrain.Nn.Models;

internal static class GanKinds
{
    public static readonly LayerKind[] All =
    [
        new("gan", [new("latent", FieldKind.PositiveInt, true), new("generator", FieldKind.Shape, true), new("discriminator", FieldKind.Shape, true),
            new("generator_lr_scale", FieldKind.PositiveFloat), new("discriminator_lr_scale", FieldKind.PositiveFloat)], d =>
        {
            Parts(d.Fields, d.Path, d.Input);
            return d.Input;
        }),
    ];

    /// <summary>The generator and discriminator as two child `block` specs (named "generator", "discriminator").</summary>
    public static List<LayerSpec> Parts(IReadOnlyDictionary<string, JsonElement> fields, string path, int[] input)
    {
        int latent = (int)fields["latent"].GetDouble();
        var (gNodes, gOut) = BlockKinds.Parse(fields["generator"], path, [latent], "generator");
        if (!gOut.AsSpan().SequenceEqual(input))
            throw new ModelSpecException(Join(path, "generator"), $"the generator makes {Shape(gOut)} but the real samples (the model's \"input\") are {Shape(input)}; they must agree.");
        var (dNodes, dOut) = BlockKinds.Parse(fields["discriminator"], path, input, "discriminator");
        if (dOut.Aggregate(1, (a, b) => a * b) != 1)
            throw new ModelSpecException(Join(path, "discriminator"), $"the discriminator gives {Shape(dOut)}; it must give one logit per sample (end in {{\"type\":\"dense\",\"out\":1}}).");
        return
        [
            new LayerSpec("block", "generator", Join(path, "generator"), new Dictionary<string, JsonElement> { ["nodes"] = fields["generator"] }, gNodes, [latent], gOut),
            new LayerSpec("block", "discriminator", Join(path, "discriminator"), new Dictionary<string, JsonElement> { ["nodes"] = fields["discriminator"] }, dNodes, input, dOut),
        ];
    }

    public static GanPair Build(LayerSpec s, Func<LayerSpec, Layer> create, Func<string, Layer> activation) =>
        new(s.Int("latent", 0), BlockKinds.Build(s.Children[0], create, activation), BlockKinds.Build(s.Children[1], create, activation),
            s.Float("generator_lr_scale", 1f), s.Float("discriminator_lr_scale", 1f));

    private static string Shape(int[] s) => DistTrain.Tensors.Tensor.ShapeString(s);
}
