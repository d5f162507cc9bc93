// Presets: parameter counts equal PyTorch's for the same modules (computed by hand below), and the
// mlp/cnn/lstm names and shapes are those of shared/peers/torchsharp/Program.cs (DESIGN contract 7).
using DistTrain.Nn.Models;
using Xunit;

namespace DistTrain.Nn.Tests.Models;

public class PresetTests
{
    // Linear(i,o) = i·o + o; Conv2d(c,o,k) = o·c·k² + o; LSTM = 4H(I+H) + 8H; GRU = 3H(I+H) + 6H; RNN = H(I+H) + 2H;
    // BatchNorm2d(c) = 2c learned (+ buffers).
    public static TheoryData<string, int> Counts => new()
    {
        { "mlp", 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10 },                                   // 235,146
        { "cnn", 32 * 9 + 32 + 64 * 32 * 9 + 64 + 3136 * 128 + 128 + 128 * 10 + 10 },                   // 421,642
        { "lstm", 4 * 128 * (28 + 128) + 8 * 128 + 128 * 10 + 10 },                                      // 82,186
        { "gru", 3 * 128 * (28 + 128) + 6 * 128 + 128 * 10 + 10 },
        { "rnn", 128 * (28 + 128) + 2 * 128 + 128 * 10 + 10 },
        { "quadrant", 2 * 8 + 8 + 8 * 4 + 4 },
        { "autoencoder", 784 * 256 + 256 + 256 * 32 + 32 + 32 * 256 + 256 + 256 * 784 + 784 },
        // ConvTranspose2d(c,o,k) = c·o·k² + o
        { "conv_autoencoder", (16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 32 * 49 + 32) + (32 * 32 * 49 + 32) + (32 * 16 * 9 + 16) + (16 * 9 + 1) },
        { "vae", 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784 },                 // fc21|fc22 as one 400→40
        { "perceptron", 2 + 1 },
        { "esn", 301 + 1 },
        { "rbm", 784 * 256 + 256 + 784 },                                                               // W, hidden and visible biases                                                                              // the readout; the reservoir is buffers
        { "resnet", 16 * 9 + 2 * 16                                                  // stem conv (no bias), bn
                    + 2 * (16 * 16 * 9 + 2 * 16)                                     // block1: two convs + bns
                    + 2 * (16 * 16 * 9 + 2 * 16)                                     // block1b (identity shortcut)
                    + (16 * 32 * 9 + 32 * 32 * 9 + 4 * 32) + (16 * 32 + 2 * 32)      // block2 + projection
                    + 2 * (32 * 32 * 9 + 2 * 32)                                     // block2b
                    + (32 * 64 * 9 + 64 * 64 * 9 + 4 * 64) + (32 * 64 + 2 * 64)      // block3 + projection
                    + 2 * (64 * 64 * 9 + 2 * 64)                                     // block3b
                    + 64 * 10 + 10 },                                                // 174,970
    };

    [Theory, MemberData(nameof(Counts))]
    public void Parameter_count_equals_pytorch(string preset, int expected)
    {
        var model = Presets.Spec(preset).Build();
        Assert.Equal(expected, model.ParameterCount);
        var summary = model.Summary();
        Assert.Contains($"Total parameters: {expected:N0}", summary);
    }

    [Fact]
    public void Mlp_cnn_lstm_have_the_peer_state_dict()
    {
        AssertStateDict("mlp", ("l1.weight", [256, 784]), ("l1.bias", [256]), ("l2.weight", [128, 256]), ("l2.bias", [128]),
            ("l3.weight", [10, 128]), ("l3.bias", [10]));
        AssertStateDict("cnn", ("c1.weight", [32, 1, 3, 3]), ("c1.bias", [32]), ("c2.weight", [64, 32, 3, 3]), ("c2.bias", [64]),
            ("l1.weight", [128, 3136]), ("l1.bias", [128]), ("l2.weight", [10, 128]), ("l2.bias", [10]));
        AssertStateDict("lstm", ("lstm.weight_ih_l0", [512, 28]), ("lstm.weight_hh_l0", [512, 128]), ("lstm.bias_ih_l0", [512]),
            ("lstm.bias_hh_l0", [512]), ("fc.weight", [10, 128]), ("fc.bias", [10]));
    }

    private static void AssertStateDict(string preset, params (string Name, int[] Shape)[] expected)
    {
        var learned = Presets.Spec(preset).Build().Store.Learned.Select(p => (p.Name, p.Shape)).ToList();
        Assert.Equal(expected.Select(e => e.Name), learned.Select(p => p.Name));
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i].Shape, learned[i].Shape);
    }

    [Fact]
    public void Resnet_uses_torchvision_block_names_and_batchnorm_buffers()
    {
        var m = Presets.Spec("resnet").Build();
        var names = m.Store.All.Select(p => p.Name).ToHashSet();
        Assert.Contains("block2.downsample.0.weight", names);
        Assert.Contains("block2.bn1.running_mean", names);
        Assert.DoesNotContain("block1.downsample.0.weight", names);   // same shape in and out: identity shortcut
        Assert.Equal([10], m.OutputShape);
    }

    [Fact]
    public void Unknown_preset_lists_the_valid_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => Presets.Spec("vgg"));
        Assert.Contains("mlp, cnn, resnet", e.Message);
        var r = Assert.Throws<ArgumentException>(() => Presets.Resolve("no/such/spec.json"));
        Assert.Contains("neither a preset", r.Message);
    }

    [Fact]
    public void Every_preset_has_defaults_and_a_description()
    {
        foreach (var name in Presets.Names)
        {
            var d = Presets.Defaults(name);
            Assert.True(d.Lr > 0 && d.Epochs > 0 && d.BatchSize > 0, name);
            // The augmentation default is in canonical form, and a trainer for the preset accepts it.
            Assert.Equal(d.Augment, DistTrain.Data.Augmentation.ImageAugmentation.Parse(d.Augment).ToString());
            Assert.False(string.IsNullOrEmpty(Presets.Description(name)));
            Assert.Equal(name, Presets.Spec(name).Name);
        }
    }

    [Fact]
    public void Only_resnet_and_vit_augment_by_default_and_their_trainers_take_crop_and_flip()
    {
        foreach (var name in Presets.Names) Assert.Equal(name is "resnet" or "vit" ? "flip" : "none", Presets.Defaults(name).Augment);
        var vit = new DistTrain.Training.TrainJob { ModelSpecJson = Presets.Spec("vit").CanonicalJson, Dataset = "fashion-mnist", Augment = Presets.Defaults("vit").Augment };
        Assert.Equal(new DistTrain.Data.Augmentation.ImageAugmentation(0, true), vit.CreateTrainer(60_000).Options.Augmentation);
        var job = new DistTrain.Training.TrainJob { ModelSpecJson = Presets.Spec("resnet").CanonicalJson, Dataset = "fashion-mnist", Augment = "crop:2,flip" };
        var t = job.CreateTrainer(60_000);
        Assert.Equal(new DistTrain.Data.Augmentation.ImageAugmentation(2, true), t.Options.Augmentation);
    }
}
