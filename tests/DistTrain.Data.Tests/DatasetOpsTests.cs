// Views and checks on a Dataset: reshape/flatten share memory, subsets copy in order, class
// override, and a fingerprint that changes with any bit of the data.
using DistTrain.Data.Sources;
using DistTrain.Tensors;
using Xunit;

namespace DistTrain.Data.Tests;

public class DatasetOpsTests
{
    static Dataset Small() => new("s", [1, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [2, 0, 1], 3);

    [Fact]
    public void FlattenAndReshapeShareTheArrays()
    {
        var d = Small();
        var flat = d.Flattened();
        Assert.Equal([4], flat.SampleShape);
        Assert.Same(d.Features, flat.Features);
        Assert.Equal([2, 2], d.WithSampleShape(2, 2).SampleShape);
        Assert.Throws<ArgumentException>(() => d.WithSampleShape(3));
    }

    [Fact]
    public void SubsetCopiesSamplesInIndexOrderAndGatherAgrees()
    {
        var d = Small();
        var sub = d.Subset([2, 0]);
        Assert.Equal([8f, 9, 10, 11, 0, 1, 2, 3], sub.Features);
        Assert.Equal([1, 2], sub.Labels);
        var x = new Tensor(2, 1, 2, 2);
        var y = new int[2];
        d.Gather([2, 0], x, y);
        Assert.Equal(sub.Features, x.ToArray());
        Assert.Equal(sub.Labels, y);
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Subset([3]));
    }

    [Fact]
    public void WithClassesChecksLabels()
    {
        Assert.Equal(5, Small().WithClasses(5).Classes);
        Assert.Throws<ArgumentException>(() => Small().WithClasses(2));
    }

    [Fact]
    public void FingerprintChangesWithAnyBit()
    {
        var a = Small().Fingerprint();
        Assert.Equal(64, a.Length);
        Assert.Equal(a, Small().Fingerprint());
        var b = Small(); b.Features[5] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(5f) ^ 1);
        Assert.NotEqual(a, b.Fingerprint());
        var c = Small(); c.Labels[0] = 1;
        Assert.NotEqual(a, c.Fingerprint());
        Assert.NotEqual(a, Small().Flattened().Fingerprint());
        Assert.NotEqual(a, Small().WithClasses(4).Fingerprint());
        Assert.Equal(Synthetic.Xor(50, 1).Fingerprint(), Synthetic.Xor(50, 1).Fingerprint());
    }
}
