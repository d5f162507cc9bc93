// Layer kinds for token-sequence models (vision Transformer, Mamba residual blocks): their spec fields, shape rules
// and builders, kept apart from LayerKinds/ModelBuilder, which each list them with one line.
using System.Text.Json;
using DistTrain.Nn.Layers;

namespace DistTrain.Nn.Models;

internal static class SequenceLayerKinds
{
    public static readonly LayerKind[] All =
    [
        new("patches", [new("size", FieldKind.PositiveInt, true)], d =>
        {
            int p = d.Int("size", 0);
            if (d.Input.Length != 3 || d.Input[1] % p != 0 || d.Input[2] % p != 0)
                throw d.Error($"patches needs a (C,H,W) image with H and W multiples of size {p}, but gets {d.Shape}.");
            return [d.Input[1] / p * (d.Input[2] / p), d.Input[0] * p * p];
        }),
        new("class_token", [], d => [Tokens(d, "class_token").T + 1, d.Input[1]]),
        new("positional_embedding", [new("std", FieldKind.PositiveFloat)], d => { Tokens(d, "positional_embedding"); return d.Input; }),
        new("token_pool", [new("mode", FieldKind.Choice, Choices: TokenPool.Modes)], d => [Tokens(d, "token_pool").E]),
        new("multihead_attention", [new("heads", FieldKind.PositiveInt, true)], d => { Heads(d, "multihead_attention"); return d.Input; }),
        new("transformer_encoder", [new("heads", FieldKind.PositiveInt, true), new("mlp", FieldKind.PositiveInt, true), new("eps", FieldKind.PositiveFloat)],
            d => { Heads(d, "transformer_encoder"); return d.Input; }),
        new("mamba", [new("d_state", FieldKind.PositiveInt), new("expand", FieldKind.PositiveInt), new("d_conv", FieldKind.PositiveInt), new("eps", FieldKind.PositiveFloat)],
            d => { Tokens(d, "mamba"); return d.Input; }),
    ];

    /// <summary>The layer for a spec of one of these kinds, else null.</summary>
    public static Layer? Create(LayerSpec s) => s.Type switch
    {
        "patches" => new Patches(s.Int("size", 0)),
        "class_token" => new ClassToken(),
        "positional_embedding" => new PositionalEmbedding(s.Float("std", 0.02f)),
        "token_pool" => new TokenPool(s.String("mode") ?? "cls"),
        "multihead_attention" => new MultiheadAttention(s.InputShape[1], s.Int("heads", 0)),
        "transformer_encoder" => new TransformerEncoderLayer(s.InputShape[1], s.Int("heads", 0), s.Int("mlp", 0), s.Float("eps", 1e-5f)),
        "mamba" => new MambaBlock(s.InputShape[1], s.Int("d_state", 16), s.Int("expand", 2), s.Int("d_conv", 4), s.Float("eps", 1e-5f)),
        _ => null,
    };

    private static (int T, int E) Tokens(LayerSpecDraft d, string type) =>
        d.Input.Length == 2 ? (d.Input[0], d.Input[1])
        : throw d.Error($"{type} needs a (T,E) token sequence but gets {d.Shape}" +
                        (d.Input.Length == 3 ? "; put {\"type\":\"patches\",\"size\":7} and a dense embedding before it." : "."));

    private static void Heads(LayerSpecDraft d, string type)
    {
        var (_, e) = Tokens(d, type);
        int h = d.Int("heads", 0);
        if (e % h != 0) throw d.Error($"{type} with {h} heads needs an embed dim divisible by {h}, but the tokens have {e} features.");
    }
}
