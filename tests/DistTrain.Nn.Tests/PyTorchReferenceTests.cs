// RNN, LSTM, GRU and BatchNorm2d against numbers printed by real PyTorch (libtorch through TorchSharp-cpu
// 0.107.0, float32; generator in Reference/TorchRnnReference.cs.txt): same deterministic weights and
// inputs, loss Σ y·R; checks outputs, dx, every parameter gradient, and running statistics.
using DistTrain.Nn.Layers;
using DistTrain.Nn.Tests.Support;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Nn.Tests;

public class PyTorchReferenceTests
{
    private const int B = 2, T = 3, F = 4, H = 3;

    private static float[] Pat(int n, double a, double b, double s, bool cos = false) =>
        Enumerable.Range(0, n).Select(k => (float)(s * (cos ? Math.Cos(a * k + b) : Math.Sin(a * k + b)))).ToArray();

    [Theory]
    [InlineData("rnn")]
    [InlineData("lstm")]
    [InlineData("gru")]
    public void Recurrent_layers_match_pytorch_outputs_and_gradients(string kind)
    {
        RecurrentLayer layer = kind switch { "rnn" => new Rnn(H, true), "lstm" => new Lstm(H, true), _ => new Gru(H, true) };
        var store = GradCheckRnn.Bind(layer, [T, F]);
        int g = layer.Gates;
        Pat(g * H * F, 0.37, 0.1, 0.3).CopyTo(layer.WeightIh.Value.Span);
        Pat(g * H * H, 0.53, 0.2, 0.3).CopyTo(layer.WeightHh.Value.Span);
        Pat(g * H, 0.71, 0.0, 0.2, true).CopyTo(layer.BiasIh.Value.Span);
        Pat(g * H, 0.29, 0.3, 0.2, true).CopyTo(layer.BiasHh.Value.Span);
        var x = new Tensor(Pat(B * T * F, 0.13, 0.5, 1.2), 0, B, T, F);
        var r = new Tensor(Pat(B * T * H, 0.17, 0.0, 1.0, true), 0, B, T, H);

        var y = layer.Forward(x, new StepContext(true)).ToArray();
        store.ZeroGrad();
        var dx = layer.Backward(r).ToArray();
        var (ey, edx, dwih, dwhh, dbih, dbhh) = kind switch
        {
            "rnn" => (RnnY, RnnDx, RnnDWeightIh, RnnDWeightHh, RnnDBiasIh, RnnDBiasHh),
            "lstm" => (LstmY, LstmDx, LstmDWeightIh, LstmDWeightHh, LstmDBiasIh, LstmDBiasHh),
            _ => (GruY, GruDx, GruDWeightIh, GruDWeightHh, GruDBiasIh, GruDBiasHh),
        };
        Near("y", ey, y);
        Near("dx", edx, dx);
        Near("weight_ih_l0.grad", dwih, layer.WeightIh.Grad.ToArray());
        Near("weight_hh_l0.grad", dwhh, layer.WeightHh.Grad.ToArray());
        Near("bias_ih_l0.grad", dbih, layer.BiasIh.Grad.ToArray());
        Near("bias_hh_l0.grad", dbhh, layer.BiasHh.Grad.ToArray());
    }

    [Fact]
    public void BatchNorm2d_matches_pytorch_outputs_and_running_stats()
    {
        var bn = new BatchNorm2d(2);
        GradCheckRnn.Bind(bn, [2, 2, 2]);
        for (int s = 0; s < 2; s++)
        {
            var xs = Pat(24, 0.31 + s, 0.4, 1.5);
            for (int i = 0; i < xs.Length; i++) xs[i] += s;
            var y = bn.Forward(new Tensor(xs, 0, 3, 2, 2, 2), new StepContext(true)).ToArray();
            if (s == 0) Near("y", BnY0, y);
        }
        Near("running_mean", BnRunningMean, bn.RunningMean.Value.ToArray());
        Near("running_var", BnRunningVar, bn.RunningVar.Value.ToArray());
        Assert.Equal(2f, bn.NumBatchesTracked.Value[0]);
    }

    private static void Near(string what, float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 2e-6 + 2e-5 * Math.Abs(expected[i]),
                $"{what}[{i}]: PyTorch {expected[i]:R}, ours {actual[i]:R}");
    }

    private static readonly float[] RnnY = [0.74012977f, 0.75785404f, -0.27302215f, 0.8558304f, 0.93504906f, -0.5064318f, 0.85079855f, 0.9494897f, -0.48347476f, 0.7472349f, 0.8340117f, -0.25236723f, 0.6380371f, 0.8126679f, -0.14077806f, 0.3500418f, 0.4973342f, 0.14571738f];
    private static readonly float[] RnnDx = [0.15509911f, 0.10563683f, 0.041877106f, -0.027550504f, 0.048471358f, 0.01762265f, -0.0156112015f, -0.046732157f, 0.019227296f, 0.016154384f, 0.0108950585f, 0.0041611306f, -0.014956471f, 0.008184815f, 0.030218324f, 0.048161928f, -0.09921177f, -0.056552626f, -0.0062393397f, 0.044918403f, -0.25100973f, -0.20946123f, -0.13956313f, -0.05077581f];
    private static readonly float[] RnnDWeightIh = [0.4013204f, 0.6424228f, 0.8726836f, 1.0882168f, 0.15719037f, 0.35962576f, 0.555992f, 0.7429752f, 0.44632903f, 0.84883827f, 1.2370223f, 1.6043302f];
    private static readonly float[] RnnDWeightHh = [-0.44552714f, -0.589483f, 0.059205487f, -0.51066643f, -0.64644945f, 0.11094384f, -0.6306841f, -0.83584636f, 0.09604857f];
    private static readonly float[] RnnDBiasIh = [-0.26591426f, -0.4159464f, -0.39415944f];
    private static readonly float[] RnnDBiasHh = [-0.26591423f, -0.41594636f, -0.39415944f];
    private static readonly float[] LstmY = [-0.1588128f, -0.2531128f, -0.000636747f, -0.18993524f, -0.41975278f, -0.013289817f, -0.15328866f, -0.48826218f, -0.030726973f, -0.12221535f, -0.30678698f, -0.014181544f, -0.06556784f, -0.2827157f, -0.05134697f, -0.024373367f, -0.06637152f, -0.07799377f];
    private static readonly float[] LstmDx = [-0.057031438f, -0.10108894f, -0.13146451f, -0.144047f, 0.0015040468f, -0.04159158f, -0.07905799f, -0.10582426f, 0.011488134f, -0.013531521f, -0.036719747f, -0.054938126f, 0.042053964f, 0.0353531f, 0.023867365f, 0.00915129f, 0.0828826f, 0.09443386f, 0.093203954f, 0.07935933f, 0.08025918f, 0.081235915f, 0.07121774f, 0.051560584f];
    private static readonly float[] LstmDWeightIh = [-0.07213636f, -0.082618326f, -0.09170601f, -0.09924605f, -0.02820526f, -0.04464457f, -0.060330447f, -0.07499817f, 0.017870223f, 0.010316163f, 0.002588007f, -0.005183826f, -0.041955557f, -0.048065018f, -0.053363316f, -0.05776105f, -0.0074946787f, -0.028254554f, -0.048537593f, -0.068001516f, 0.0042941608f, 0.00086097216f, -0.0025867468f, -0.005990811f, 0.8690383f, 1.0444345f, 1.2022045f, 1.3396858f, -0.053147458f, 0.04520862f, 0.14280175f, 0.23798491f, -0.13298756f, -0.020529222f, 0.09227557f, 0.2035231f, -0.08588802f, -0.09764051f, -0.107745185f, -0.11603154f, -0.22334547f, -0.26217458f, -0.29657915f, -0.32597864f, 0.007515585f, -0.0020258643f, -0.011533123f, -0.020845748f];
    private static readonly float[] LstmDWeightHh = [0.007249531f, 0.012522703f, 0.00014768411f, 0.0037886002f, 0.00647262f, 0.00067394524f, -0.0027705845f, -0.010208994f, -0.0012910317f, 0.0056083277f, 0.007365154f, -0.0004910269f, -0.0038739145f, -0.022543555f, -0.003877513f, -0.001752709f, -0.0063545136f, -0.0009174298f, -0.0832185f, -0.10011315f, 0.009686231f, 0.03157168f, 0.115668565f, 0.015016952f, 0.03349878f, 0.12907788f, 0.017933758f, 0.007855497f, 0.011505662f, -0.00046444312f, 0.023669936f, 0.032818288f, -0.0014967078f, -0.003311215f, -0.013722526f, -0.002102744f];
    private static readonly float[] LstmDBiasIh = [-0.08931769f, -0.061781507f, 0.04460652f, -0.021837503f, 0.07941181f, 0.022173561f, 0.7503818f, -0.2888317f, -0.42728338f, -0.08526021f, -0.19809888f, 0.05086414f];
    private static readonly float[] LstmDBiasHh = [-0.08931769f, -0.061781507f, 0.04460652f, -0.021837503f, 0.07941181f, 0.022173561f, 0.7503818f, -0.2888317f, -0.42728338f, -0.08526021f, -0.19809888f, 0.05086414f];
    private static readonly float[] GruY = [-0.20441128f, -0.33099726f, 0.033224393f, -0.23820765f, -0.56374496f, 0.022667393f, -0.19211908f, -0.6962841f, -0.0072501376f, -0.15265968f, -0.3800532f, -0.010923995f, -0.09498214f, -0.39475435f, -0.049045153f, -0.041554466f, -0.019791856f, -0.06634726f];
    private static readonly float[] GruDx = [-0.12534283f, -0.14165625f, -0.13879718f, -0.11715252f, 0.0035418347f, -0.037463393f, -0.07339813f, -0.099398784f, 0.024755714f, -0.00737328f, -0.038504332f, -0.064424f, 0.05919462f, 0.041785058f, 0.018720083f, -0.006878566f, 0.1245205f, 0.13890693f, 0.13449296f, 0.111876f, 0.17528203f, 0.18395977f, 0.1677394f, 0.12881632f];
    private static readonly float[] GruDWeightIh = [-0.002043302f, -0.0036741893f, -0.00524307f, -0.0067234663f, -0.0012025398f, -0.0034687836f, -0.005676487f, -0.007788393f, 0.004984102f, -0.011043478f, -0.026884684f, -0.042272188f, 0.04921546f, 0.05421694f, 0.058303446f, 0.061406f, 0.1852137f, 0.21323837f, 0.23766437f, 0.25807953f, -0.027439425f, -0.02634641f, -0.024808764f, -0.02285244f, 1.0503514f, 1.3366851f, 1.6004604f, 1.8372264f, -0.010457169f, 0.18881655f, 0.38490373f, 0.5744953f, -0.062397733f, 0.20307757f, 0.46512565f, 0.7193242f];
    private static readonly float[] GruDWeightHh = [-0.00030008293f, -0.00048610748f, 0.0001665717f, -0.00068668206f, -0.0024137292f, -0.00022552909f, -0.00534996f, -0.022550412f, -0.0030069607f, -0.005749517f, -0.01687586f, -0.0012926393f, -0.041202806f, -0.10325587f, -0.0022808257f, 0.0018365865f, 0.006673323f, 0.00083474605f, -0.10271107f, -0.12709732f, 0.036011595f, 0.037374966f, 0.15520304f, 0.020642325f, 0.050380982f, 0.20003435f, 0.02439339f];
    private static readonly float[] GruDBiasIh = [-0.011119053f, -0.0005580003f, 0.04919061f, 0.114567116f, 0.41468483f, -0.05454228f, 0.7597522f, -0.53131336f, -0.6123064f];
    private static readonly float[] GruDBiasHh = [-0.011119053f, -0.00055800006f, 0.04919061f, 0.114567116f, 0.41468486f, -0.05454228f, 0.6906859f, -0.24020383f, -0.4225159f];
    private static readonly float[] BnY0 = [0.62184453f, 1.0843828f, 1.4373899f, 1.6472127f, 1.0112622f, 0.92637444f, 0.73197377f, 0.446593f, 0.39129582f, -0.14984179f, -0.68284845f, -1.156911f, -1.2482544f, -1.4099797f, -1.4584867f, -1.3891509f, -1.4702878f, -1.078895f, -0.5908019f, -0.052539818f, 0.16288103f, 0.5029762f, 0.7739222f, 0.94988906f];
    private static readonly float[] BnRunningMean = [0.10498321f, 0.12417757f];
    private static readonly float[] BnRunningVar = [1.003616f, 1.0771804f];
}
