// The transposed convolutions of the GAN generator (64→32 and 32→1, 4×4, stride 2, padding 1) and of the
// conv_autoencoder's decoder (32→16, 3×3, stride 2, padding 1, output_padding 1), batch 64: the same list on both sides.
public static class Shapes
{
    public static readonly (int Cin, int Cout, int Hw, int K, int Stride, int Pad, int OutPad)[] All =
    [
        (64, 32, 7, 4, 2, 1, 0),
        (32, 1, 14, 4, 2, 1, 0),
        (32, 16, 7, 3, 2, 1, 1),
    ];

    /// <summary>Forward + the two backward products (input and weight gradients): 3 × 2·B·Cin·Cout·H·W·K², as the peer counts a conv.</summary>
    public static double Flop(int batch, (int Cin, int Cout, int Hw, int K, int Stride, int Pad, int OutPad) s) =>
        3.0 * 2.0 * batch * s.Cin * s.Cout * s.Hw * s.Hw * s.K * s.K;
}
