// Convolution and pooling entry points (NCHW, float32). Shapes: x (B,C,H,W), w (OC,C,KH,KW), b (OC),
// y (B,OC,OH,OW) with OH = (H + 2*pad - KH)/stride + 1. Fast paths live beside these; the naive
// kernels in ConvReference are the oracle. Determinism: each output is one fixed-order reduction.
namespace DistTrain.Tensors.Kernels;

public readonly record struct ConvShape(int Batch, int InChannels, int Height, int Width,
    int OutChannels, int KernelH, int KernelW, int Stride = 1, int Pad = 0)
{
    public int OutH => (Height + 2 * Pad - KernelH) / Stride + 1;
    public int OutW => (Width + 2 * Pad - KernelW) / Stride + 1;
    public int InputLength => Batch * InChannels * Height * Width;
    public int WeightLength => OutChannels * InChannels * KernelH * KernelW;
    public int OutputLength => Batch * OutChannels * OutH * OutW;
    /// <summary>Multiply-adds × 2 of the forward pass.</summary>
    public double ForwardFlops => 2.0 * Batch * OutChannels * OutH * OutW * InChannels * KernelH * KernelW;

    public void Validate()
    {
        if (Batch < 0 || InChannels <= 0 || Height <= 0 || Width <= 0 || OutChannels <= 0 || KernelH <= 0 || KernelW <= 0 || Stride <= 0 || Pad < 0)
            throw new ArgumentException($"Invalid convolution shape {this}: sizes must be positive (batch, pad non-negative).");
        if (OutH <= 0 || OutW <= 0)
            throw new ArgumentException($"Convolution {this}: kernel {KernelH}x{KernelW} is larger than the padded input {Height + 2 * Pad}x{Width + 2 * Pad}.");
    }
}

public readonly record struct PoolShape(int Batch, int Channels, int Height, int Width, int Kernel, int Stride)
{
    public int OutH => (Height - Kernel) / Stride + 1;
    public int OutW => (Width - Kernel) / Stride + 1;
    public int InputLength => Batch * Channels * Height * Width;
    public int OutputLength => Batch * Channels * OutH * OutW;

    public void Validate()
    {
        if (Batch < 0 || Channels <= 0 || Height <= 0 || Width <= 0 || Kernel <= 0 || Stride <= 0 || Kernel > Height || Kernel > Width)
            throw new ArgumentException($"Invalid pooling shape {this}.");
    }
}
