// The shapes both sides compare at (B batch, T tokens, E embed dim, H heads) and the file names they exchange.
static class Cases
{
    public static readonly (int B, int T, int E, int H)[] All =
    [
        (2, 5, 8, 2),      // tiny, several heads
        (4, 17, 64, 4),    // the 7×7-patch ViT's attention (16 patches + class token)
        (4, 50, 64, 4),    // the `vit` preset's attention (49 tokens of the 7×7 stem grid + class token)
        (2, 9, 12, 1),     // one head
    ];

    public static string Dir(string root, (int B, int T, int E, int H) c) => Path.Combine(root, $"b{c.B}-t{c.T}-e{c.E}-h{c.H}");

    // Inputs written by DistTrain and read by libtorch, then DistTrain's results to compare against.
    public static readonly string[] Inputs = ["x", "dy", "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"];
    public static readonly string[] Results = ["y", "dx", "grad.in_proj_weight", "grad.in_proj_bias", "grad.out_proj.weight", "grad.out_proj.bias"];

    public static void Write(string dir, string name, ReadOnlySpan<float> v) =>
        File.WriteAllBytes(Path.Combine(dir, name + ".f32"), System.Runtime.InteropServices.MemoryMarshal.AsBytes(v).ToArray());

    public static float[] Read(string dir, string name) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, name + ".f32"))).ToArray();
}
