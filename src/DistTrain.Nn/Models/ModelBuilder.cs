// Turns a parsed ModelSpec into a Sequential of real layers and its loss. Names: a layer's "name",
// else its index in the sequence (nn.Sequential). A dense/conv2d "activation" becomes its own layer
// right after it (named "<name>_act", or its index). A spec's "standardize" becomes a first layer named
// "standardize". Initial weights follow from the seed alone.
using System.Globalization;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Losses;

namespace DistTrain.Nn.Models;

public static class ModelBuilder
{
    /// <summary>Builds the model with weights initialised from <paramref name="seed"/>.</summary>
    public static Sequential Build(this ModelSpec spec, ulong seed = 1)
    {
        var layers = new List<(string Name, Layer Layer)>();
        // The standardization step goes first under its own name and takes no index, so the other layers keep
        // the names (and a checkpoint the state_dict) they have without it.
        int first = 0;
        if (spec.StandardizeMean is { } mean) { layers.Add(("standardize", new Standardize(mean, spec.StandardizeStd!))); first = 1; }
        foreach (var ls in spec.Layers)
        {
            string Name() => ls.Name ?? (layers.Count - first).ToString(CultureInfo.InvariantCulture);
            layers.Add((Name(), Create(ls)));
            if (ls.String("activation") is { } act)
                layers.Add((ls.Name is null ? Name() : ls.Name + "_act", Activation(act, 0.01f)));
        }
        try
        {
            return new Sequential(spec.Input, layers, InitSeed(seed));
        }
        catch (ArgumentException e)
        {
            throw new ModelSpecException("layers", $"the layers do not build: {e.Message}");
        }
    }

    /// <summary>The spec's loss function.</summary>
    public static Loss CreateLoss(this ModelSpec spec) => spec.Loss switch
    {
        "mse" => new MeanSquaredError(spec.Reduction == "sum"),
        "bce_with_logits" => new BinaryCrossEntropyWithLogits(spec.Reduction == "sum", spec.Target == "values"),
        _ => CreateLoss(spec.Loss, spec.LabelSmoothing),
    };

    /// <param name="labelSmoothing">cross_entropy's label smoothing (ModelSpec refuses it for the other losses).</param>
    public static Loss CreateLoss(string name, float labelSmoothing = 0f) => name switch
    {
        "cross_entropy" => new SoftmaxCrossEntropy(labelSmoothing),
        "mse" => new MeanSquaredError(),
        "bce_with_logits" => new BinaryCrossEntropyWithLogits(),
        "perceptron" => new PerceptronCriterion(),
        "none" => new NoOutputLoss(),
        _ => throw new ModelSpecException("loss", $"unknown loss \"{name}\"; valid: {string.Join(", ", ModelSpec.LossNames)}."),
    };

    /// <summary>The int seed of System.Random that initialises the weights, derived from the run's seed.</summary>
    public static int InitSeed(ulong seed) => (int)(SplitMix.Mix(seed ^ 0x1A17_5EEDUL) & 0x7FFF_FFFF);

    private static Layer Create(LayerSpec s)
    {
        var inp = s.InputShape;
        return s.Type switch
        {
            "dense" => new Dense(inp[^1], s.Int("out", 0), s.Bool("bias", true), Init(s)),
            "conv2d" => new Conv2d(inp[0], s.Int("out", 0), s.Int("kernel", 0), s.Int("stride", 1), s.Int("padding", 0), s.Bool("bias", true), Init(s)),
            "conv_transpose2d" => new ConvTranspose2d(inp[0], s.Int("out", 0), s.Int("kernel", 0), s.Int("stride", 1), s.Int("padding", 0),
                s.Int("output_padding", 0), s.Bool("bias", true), Init(s)),
            "maxpool2d" => new MaxPool2d(s.Int("kernel", 0), s.Fields.ContainsKey("stride") ? s.Int("stride", 0) : null),
            "avgpool2d" => new AvgPool2d(s.Int("kernel", 0), s.Fields.ContainsKey("stride") ? s.Int("stride", 0) : null),
            "flatten" => new Flatten(),
            "reshape" => new Reshape(s.OutputShape),
            "dropout" => new Dropout(s.Float("p", 0.5f)),
            "relu" or "leaky_relu" or "sigmoid" or "tanh" or "gelu" => Activation(s.Type, s.Float("slope", 0.01f)),
            "softmax" => new Softmax(),
            "esn" => new EchoStateReservoir(s.Int("units", 0), s.Float("spectral_radius", 0.9f), s.Float("leak", 1f), s.Float("input_scale", 1f),
                s.Float("density", 0.1f), s.Bool("include_input", true), s.Int("washout", 0)),
            "rbm" => new Rbm(inp[0], s.Int("hidden", 0), s.Int("k", 1)),
            "reparameterize" => new Reparameterize(s.Float("kl_weight", 1f)),
            "batchnorm" => inp.Length == 3 ? new BatchNorm2d(inp[0], s.Float("eps", 1e-5f), s.Float("momentum", 0.1f))
                                           : new BatchNorm1d(inp[0], s.Float("eps", 1e-5f), s.Float("momentum", 0.1f)),
            "batchnorm1d" => new BatchNorm1d(inp[0], s.Float("eps", 1e-5f), s.Float("momentum", 0.1f)),
            "batchnorm2d" => new BatchNorm2d(inp[0], s.Float("eps", 1e-5f), s.Float("momentum", 0.1f)),
            "layernorm" => new LayerNorm([inp[^1]], s.Float("eps", 1e-5f)),
            "rnn" => new Rnn(s.Int("hidden", 0), s.Bool("return_sequences", false), inp[1]),
            "lstm" => new Lstm(s.Int("hidden", 0), s.Bool("return_sequences", false), inp[1]),
            "gru" => new Gru(s.Int("hidden", 0), s.Bool("return_sequences", false), inp[1]),
            "residual" => ResidualBlock.Basic(inp[0], s.Int("out", 0), s.Int("stride", 1),
                s.Bool("batch_norm", true) ? c => new BatchNorm2d(c) : null),
            "block" => BlockKinds.Build(s, Create, a => Activation(a, 0.01f)),
            "gan" => GanKinds.Build(s, Create, a => Activation(a, 0.01f)),
            "zero_pad2d" => new ZeroPad2d(s.Int("padding", 0)),
            _ when SequenceLayerKinds.Create(s) is { } layer => layer,
            _ when GraphLayerKinds.Create(s) is { } graphLayer => graphLayer,
            _ => throw new ModelSpecException(s.Path, $"layer type \"{s.Type}\" has no builder."),
        };
    }

    private static Layer Activation(string name, float slope) => name switch
    {
        "relu" => new ReLU(),
        "leaky_relu" => new LeakyReLU(slope),
        "sigmoid" => new Sigmoid(),
        "tanh" => new Tanh(),
        "gelu" => new GELU(),
        "softmax" => new Softmax(),
        _ => throw new ModelSpecException("activation", $"unknown activation \"{name}\"; valid: {string.Join(", ", LayerKinds.Activations)}."),
    };

    /// <summary>Spec init names → the layers' init strings (DefaultInit): default, xavier, he, zeros, normal:S, uniform:A.</summary>
    private static string Init(LayerSpec s)
    {
        var scale = s.Float("init_scale", float.NaN);
        return s.String("init") switch
        {
            null or "default" => "default",
            "xavier" or "glorot" => "xavier",
            "he" or "kaiming" => "he",
            "zeros" => "zeros",
            "normal" => "normal:" + (float.IsNaN(scale) ? 0.01f : scale).ToString("R", CultureInfo.InvariantCulture),
            "uniform" => "uniform:" + (float.IsNaN(scale) ? 0.05f : scale).ToString("R", CultureInfo.InvariantCulture),
            var other => throw new ModelSpecException(s.Path + ".init", $"unknown init \"{other}\"; valid: {string.Join(", ", LayerKinds.Inits)}."),
        };
    }
}
