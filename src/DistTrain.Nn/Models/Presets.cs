// Named model presets, each a ModelSpec written in the same JSON a user would write. `mlp`, `cnn`
// and `lstm` have exactly the layers, names and parameter shapes of shared/peers/torchsharp/Program.cs
// (DESIGN contract 7), so a checkpoint loads into that PyTorch model and benchmarks compare like with like.
namespace DistTrain.Nn.Models;

/// <summary>Default hyper-parameters of a preset, used by `disttrain train` unless overridden.</summary>
/// <param name="Augment">Training-time image augmentation (ImageAugmentation.Parse): "flip" for resnet and vit (resnet with two blocks per stage
/// 93.35 / 93.26 % in 18 epochs for seeds 1 / 2; the three-block model reached 92.6–93.1 %, 92.31 % without flip in 10 epochs,
/// where it overfit; crop:2,flip with AdamW 0.05 underfit: docs/accuracy.md), "none" elsewhere.</param>
public sealed record PresetDefaults(string Optimizer, float Lr, int Epochs, int BatchSize, string Schedule, float WeightDecay, string Dataset,
    string Augment = "none");

public static class Presets
{
    private sealed record Preset(string Json, PresetDefaults Defaults, string Description);

    private static readonly Dictionary<string, Preset> All = new(StringComparer.Ordinal)
    {
        ["mlp"] = new("""
            {"name":"mlp","input":[1,28,28],"loss":"cross_entropy","layers":[
              {"type":"flatten","name":"flat"},
              {"type":"dense","out":256,"name":"l1"},{"type":"relu","name":"r1"},
              {"type":"dense","out":128,"name":"l2"},{"type":"relu","name":"r2"},
              {"type":"dense","out":10,"name":"l3"}]}
            """, new("adam", 1e-3f, 15, 128, "cosine", 0f, "fashion-mnist"), "784-256-128-10 MLP with ReLU (peer: TorchSharp `mlp`)"),
        ["cnn"] = new("""
            {"name":"cnn","input":[1,28,28],"loss":"cross_entropy","layers":[
              {"type":"conv2d","out":32,"kernel":3,"padding":1,"name":"c1"},{"type":"relu","name":"r1"},{"type":"maxpool2d","kernel":2,"name":"p1"},
              {"type":"conv2d","out":64,"kernel":3,"padding":1,"name":"c2"},{"type":"relu","name":"r2"},{"type":"maxpool2d","kernel":2,"name":"p2"},
              {"type":"flatten","name":"flat"},
              {"type":"dense","out":128,"name":"l1"},{"type":"relu","name":"r3"},
              {"type":"dense","out":10,"name":"l2"}]}
            """, new("adam", 1e-3f, 12, 128, "cosine", 0f, "fashion-mnist"), "two conv(3x3)+ReLU+maxpool blocks, 3136-128-10 (peer: TorchSharp `cnn`)"),
        ["resnet"] = new("""
            {"name":"resnet","input":[1,28,28],"loss":"cross_entropy","layers":[
              {"type":"conv2d","out":16,"kernel":3,"padding":1,"bias":false,"name":"stem"},{"type":"batchnorm2d","name":"stem_bn"},{"type":"relu","name":"stem_relu"},
              {"type":"residual","out":16,"name":"block1"},
              {"type":"residual","out":16,"name":"block1b"},
              {"type":"residual","out":32,"stride":2,"name":"block2"},
              {"type":"residual","out":32,"name":"block2b"},
              {"type":"residual","out":64,"stride":2,"name":"block3"},
              {"type":"residual","out":64,"name":"block3b"},
              {"type":"avgpool2d","kernel":7,"name":"pool"},{"type":"flatten","name":"flat"},
              {"type":"dense","out":10,"name":"fc"}]}
            """, new("adam", 2e-3f, 18, 128, "cosine", 0f, "fashion-mnist", Augment: "flip"),
            "small ResNet (ResNet-14 layout): stem conv+BN, two basic blocks per stage 16/32/64 (projection shortcut where a stage starts), global average pool"),
        ["rnn"] = new(Recurrent("rnn"), new("adam", 1e-3f, 15, 128, "cosine", 0f, "fashion-mnist"), "image read row by row: 28 steps x 28 features, tanh RNN hidden 128, then 128-10"),
        ["lstm"] = new(Recurrent("lstm"), new("adam", 2e-3f, 12, 128, "cosine", 0f, "fashion-mnist"), "28 steps x 28 features, LSTM hidden 128, then 128-10 (peer: TorchSharp `lstm`)"),
        ["gru"] = new(Recurrent("gru"), new("adam", 2e-3f, 12, 128, "cosine", 0f, "fashion-mnist"), "28 steps x 28 features, GRU hidden 128, then 128-10"),
        ["autoencoder"] = new("""
            {"name":"autoencoder","input":[1,28,28],"loss":"mse","layers":[
              {"type":"flatten","name":"flat"},
              {"type":"dense","out":256,"name":"enc1"},{"type":"relu","name":"enc1_relu"},
              {"type":"dense","out":32,"name":"code"},{"type":"relu","name":"code_relu"},
              {"type":"dense","out":256,"name":"dec1"},{"type":"relu","name":"dec1_relu"},
              {"type":"dense","out":784,"name":"dec2"},{"type":"sigmoid","name":"out"}]}
            """, new("adam", 1e-3f, 10, 128, "constant", 0f, "fashion-mnist"), "784-256-32-256-784 autoencoder, sigmoid output, MSE against the input"),
        ["conv_autoencoder"] = new("""
            {"name":"conv_autoencoder","input":[1,28,28],"loss":"mse","layers":[
              {"type":"conv2d","out":16,"kernel":3,"stride":2,"padding":1,"name":"enc1"},{"type":"relu","name":"enc1_relu"},
              {"type":"conv2d","out":32,"kernel":3,"stride":2,"padding":1,"name":"enc2"},{"type":"relu","name":"enc2_relu"},
              {"type":"conv2d","out":32,"kernel":7,"name":"code"},{"type":"relu","name":"code_relu"},
              {"type":"conv_transpose2d","out":32,"kernel":7,"name":"dec1"},{"type":"relu","name":"dec1_relu"},
              {"type":"conv_transpose2d","out":16,"kernel":3,"stride":2,"padding":1,"output_padding":1,"name":"dec2"},{"type":"relu","name":"dec2_relu"},
              {"type":"conv_transpose2d","out":1,"kernel":3,"stride":2,"padding":1,"output_padding":1,"name":"dec3"},{"type":"sigmoid","name":"out"}]}
            """, new("adam", 1e-3f, 10, 128, "constant", 0f, "fashion-mnist"),
            "convolutional autoencoder: conv 1-16-32 (stride 2) to a 32-value code (7x7 conv), mirrored by transposed convolutions, sigmoid output, MSE"),
        ["vae"] = new("""
            {"name":"vae","input":[1,28,28],"loss":"bce_with_logits","reduction":"sum","target":"values","layers":[
              {"type":"flatten","name":"flat"},
              {"type":"dense","out":400,"name":"fc1"},{"type":"relu","name":"fc1_relu"},
              {"type":"dense","out":40,"name":"fc2"},
              {"type":"reparameterize","name":"z"},
              {"type":"dense","out":400,"name":"fc3"},{"type":"relu","name":"fc3_relu"},
              {"type":"dense","out":784,"name":"fc4"}]}
            """, new("adam", 1e-3f, 10, 128, "constant", 0f, "fashion-mnist"),
            "variational autoencoder 784-400-20 (PyTorch's example): fc2 gives μ and log σ², z = μ + ε·σ, loss BCE (summed over pixels) + KL, in nats per image"),
        ["perceptron"] = new("""
            {"name":"perceptron","input":[2],"loss":"perceptron","layers":[
              {"type":"dense","out":1,"init":"zeros","name":"fc"}]}
            """, new("sgd", 1f, 10, 1, "constant", 0f, "synthetic:separable:margin=0.05"),
            "Rosenblatt's perceptron: one score w·x + b from w = 0, step activation at prediction, SGD with rate 1 and batch 1 on the perceptron criterion (updates only on mistakes)"),
        ["esn"] = new("""
            {"name":"esn","input":[400,1],"loss":"mse","layers":[
              {"type":"esn","units":300,"spectral_radius":0.9,"leak":1,"input_scale":1,"density":0.1,"washout":100,"name":"reservoir"},
              {"type":"dense","out":1,"name":"readout"}]}
            """, new("ridge", 1f, 1, 8, "constant", 1e-8f, "synthetic:mackey-glass:n=40:test-n=10"),
            "echo state network: a fixed 300-unit reservoir (spectral radius 0.9) and a linear readout fitted by ridge regression in closed form " +
            "(--optimizer ridge, λ = --weight-decay); one-step prediction of Mackey–Glass (τ = 17)"),
        ["rbm"] = new("""
            {"name":"rbm","input":[1,28,28],"loss":"none","layers":[
              {"type":"flatten","name":"flat"},
              {"type":"rbm","hidden":256,"k":1,"name":"rbm"}]}
            """, new("momentum", 0.05f, 5, 64, "constant", 0f, "fashion-mnist"),
            "binary RBM 784-256 trained by CD-1 (pixels as visible probabilities); output: the mean-field reconstruction"),
        ["quadrant"] = new("""
            {"name":"quadrant","input":[2],"loss":"cross_entropy","layers":[
              {"type":"dense","out":8,"name":"hidden"},{"type":"tanh","name":"act"},
              {"type":"dense","out":4,"name":"out"}]}
            """, new("adam", 0.05f, 30, 32, "constant", 0f, "synthetic:quadrants"), "the classic 2-8-4 network that classifies a point (x,y) into its quadrant"),
        ["vit"] = new("""
            {"name":"vit","input":[1,28,28],"loss":"cross_entropy","layers":[
              {"type":"conv2d","out":32,"kernel":3,"stride":2,"padding":1,"name":"stem1"},{"type":"relu","name":"stem1_relu"},
              {"type":"conv2d","out":64,"kernel":3,"stride":2,"padding":1,"name":"stem2"},{"type":"relu","name":"stem2_relu"},
              {"type":"patches","size":1,"name":"patchify"},
              {"type":"dense","out":64,"name":"embed"},
              {"type":"class_token","name":"cls"},
              {"type":"positional_embedding","name":"pos"},
              {"type":"transformer_encoder","heads":4,"mlp":128,"name":"block1"},
              {"type":"transformer_encoder","heads":4,"mlp":128,"name":"block2"},
              {"type":"token_pool","mode":"cls","name":"pool"},
              {"type":"layernorm","name":"norm"},
              {"type":"dense","out":10,"name":"head"}]}
            """, new("adamw", 2e-3f, 12, 128, "warmup:500+cosine", 0.05f, "fashion-mnist", Augment: "flip"),
            // A convolutional stem (Xiao et al. 2021, "Early convolutions help transformers see better") in place of the
            // linear patch projection: with 7x7 or 4x4 linear patches the Transformer overfit below 90 % (docs/accuracy.md).
            "vision Transformer with a convolutional stem: two 3x3 stride-2 convs with ReLU (1-32-64 channels) make 49 tokens of a 7x7 grid, " +
            "dim 64, class token, learned positions, 2 pre-norm blocks (4 heads, GELU MLP 128), 93,962 parameters (peer: benchmarks/vit-vs-libtorch)"),
        ["mamba"] = new("""
            {"name":"mamba","input":[1,28,28],"loss":"cross_entropy","layers":[
              {"type":"reshape","shape":[28,28],"name":"rows"},
              {"type":"dense","out":64,"name":"embed"},
              {"type":"mamba","d_state":16,"expand":2,"d_conv":4,"name":"block1"},
              {"type":"mamba","d_state":16,"expand":2,"d_conv":4,"name":"block2"},
              {"type":"layernorm","name":"norm_f"},
              {"type":"token_pool","mode":"mean","name":"pool"},
              {"type":"dense","out":10,"name":"head"}]}
            """, new("adamw", 2e-3f, 10, 128, "warmup:300+cosine", 0.01f, "fashion-mnist"),
            "image read row by row (28 steps x 28 features, as the lstm preset): embedding 28-64, two Mamba blocks (d_state 16, expand 2, conv 4), mean over steps, 64-10"),
        ["gcn"] = new("""
            {"name":"gcn","input":[33,102],"loss":"cross_entropy","layers":[
              {"type":"gcn","hidden":16,"out":2,"dropout":0.5,"name":"gcn"}]}
            """, new("adam", 0.01f, 200, 2, "constant", 5e-4f, "graph:karate"),
            "Kipf and Welling's two-layer GCN (hidden 16, ReLU, dropout 0.5) classifying each node from its 2-hop neighbourhood; " +
            "karate club with one labelled member per faction (train on graph:sbm with --batch-size 80)"),
        ["inception"] = new("""
            {"name":"inception","input":[1,28,28],"loss":"cross_entropy","layers":[
              {"type":"conv2d","out":32,"kernel":3,"padding":1,"bias":false,"name":"stem"},{"type":"batchnorm2d","name":"stem_bn"},{"type":"relu","name":"stem_relu"},
              {"type":"maxpool2d","kernel":2,"name":"pool1"},
              {"type":"block","name":"inc1","nodes":[
                {"name":"b1","type":"conv2d","out":16,"kernel":1,"activation":"relu","inputs":["input"]},
                {"name":"b2_reduce","type":"conv2d","out":16,"kernel":1,"activation":"relu","inputs":["input"]},
                {"name":"b2","type":"conv2d","out":24,"kernel":3,"padding":1,"activation":"relu"},
                {"name":"b3_reduce","type":"conv2d","out":4,"kernel":1,"activation":"relu","inputs":["input"]},
                {"name":"b3","type":"conv2d","out":8,"kernel":5,"padding":2,"activation":"relu"},
                {"name":"b4_pad","type":"zero_pad2d","padding":1,"inputs":["input"]},
                {"name":"b4_pool","type":"maxpool2d","kernel":3,"stride":1},
                {"name":"b4","type":"conv2d","out":8,"kernel":1,"activation":"relu"},
                {"name":"cat","type":"concat","inputs":["b1","b2","b3","b4"]}]},
              {"type":"batchnorm2d","name":"inc1_bn"},{"type":"relu","name":"inc1_relu"},
              {"type":"maxpool2d","kernel":2,"name":"pool2"},
              {"type":"block","name":"inc2","nodes":[
                {"name":"b1","type":"conv2d","out":32,"kernel":1,"activation":"relu","inputs":["input"]},
                {"name":"b2_reduce","type":"conv2d","out":24,"kernel":1,"activation":"relu","inputs":["input"]},
                {"name":"b2","type":"conv2d","out":48,"kernel":3,"padding":1,"activation":"relu"},
                {"name":"b3_reduce","type":"conv2d","out":8,"kernel":1,"activation":"relu","inputs":["input"]},
                {"name":"b3","type":"conv2d","out":16,"kernel":5,"padding":2,"activation":"relu"},
                {"name":"b4_pad","type":"zero_pad2d","padding":1,"inputs":["input"]},
                {"name":"b4_pool","type":"maxpool2d","kernel":3,"stride":1},
                {"name":"b4","type":"conv2d","out":16,"kernel":1,"activation":"relu"},
                {"name":"cat","type":"concat","inputs":["b1","b2","b3","b4"]}]},
              {"type":"batchnorm2d","name":"inc2_bn"},{"type":"relu","name":"inc2_relu"},
              {"type":"avgpool2d","kernel":7,"name":"pool"},{"type":"flatten","name":"flat"},
              {"type":"dense","out":10,"name":"fc"}]}
            """, new("adam", 2e-3f, 10, 128, "cosine", 0f, "fashion-mnist"),
            "Inception-style network (GoogLeNet's module): conv+BN stem, two blocks of parallel 1x1, 1x1-3x3, 1x1-5x5 and 3x3-max-pool-1x1 branches " +
            "concatenated (56 and 112 channels), each followed by batch norm (as BN-Inception), global average pool, 112-10"),
        ["gan"] = new("""
            {"name":"gan","input":[1,28,28],"loss":"none","layers":[
              {"type":"gan","latent":64,"name":"gan",
               "generator":[
                 {"type":"dense","out":3136,"bias":false,"init":"normal","init_scale":0.02,"name":"fc"},{"type":"batchnorm1d","name":"fc_bn"},{"type":"relu","name":"fc_relu"},
                 {"type":"reshape","shape":[64,7,7],"name":"unflatten"},
                 {"type":"conv_transpose2d","out":32,"kernel":4,"stride":2,"padding":1,"bias":false,"init":"normal","init_scale":0.02,"name":"up1"},
                 {"type":"batchnorm2d","name":"up1_bn"},{"type":"relu","name":"up1_relu"},
                 {"type":"conv_transpose2d","out":1,"kernel":4,"stride":2,"padding":1,"init":"normal","init_scale":0.02,"name":"up2"},{"type":"tanh","name":"out"}],
               "discriminator":[
                 {"type":"conv2d","out":32,"kernel":4,"stride":2,"padding":1,"init":"normal","init_scale":0.02,"name":"c1"},{"type":"leaky_relu","slope":0.2,"name":"c1_act"},
                 {"type":"conv2d","out":64,"kernel":4,"stride":2,"padding":1,"bias":false,"init":"normal","init_scale":0.02,"name":"c2"},
                 {"type":"batchnorm2d","name":"c2_bn"},{"type":"leaky_relu","slope":0.2,"name":"c2_act"},
                 {"type":"flatten","name":"flat"},{"type":"dense","out":1,"init":"normal","init_scale":0.02,"name":"out"}]}]}
            """, new("adam:beta1=0.5", 2e-4f, 10, 64, "constant", 0f, "fashion-mnist"),
            "DCGAN (the networks of `disttrain gan`) trained by the ordinary step: generator and discriminator are two optimizer groups of the one " +
            "vector, each micro-batch gives both gradients at the same weights (simultaneous updates); output: G(z) for the micro-batch's latents"),
    };

    private static string Recurrent(string type) => $$"""
        {"name":"{{type}}","input":[1,28,28],"loss":"cross_entropy","layers":[
          {"type":"reshape","shape":[28,28],"name":"rows"},
          {"type":"{{type}}","hidden":128,"name":"{{type}}"},
          {"type":"dense","out":10,"name":"fc"}]}
        """;

    public static IEnumerable<string> Names => All.Keys;

    public static bool Exists(string name) => All.ContainsKey(name);

    /// <summary>The preset's spec; throws ArgumentException listing the valid names.</summary>
    public static ModelSpec Spec(string name) => ModelSpec.Parse(Get(name).Json);

    public static string Json(string name) => Get(name).Json;

    public static PresetDefaults Defaults(string name) => Get(name).Defaults;

    public static string Description(string name) => Get(name).Description;

    /// <summary>A preset name, or a path to a JSON spec file.</summary>
    public static ModelSpec Resolve(string presetOrFile) =>
        Exists(presetOrFile) ? Spec(presetOrFile)
        : File.Exists(presetOrFile) ? ModelSpec.Load(presetOrFile)
        : throw new ArgumentException($"--model \"{presetOrFile}\" is neither a preset ({string.Join(", ", Names)}) nor an existing spec file.");

    private static Preset Get(string name) =>
        All.TryGetValue(name, out var p) ? p
        : throw new ArgumentException($"Unknown model preset \"{name}\"; valid: {string.Join(", ", All.Keys)} (or a path to a spec.json).", nameof(name));
}
