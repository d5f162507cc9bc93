// The --dataset strings: parsing, canonical text, loading each kind from files the test writes,
// Fashion-MNIST lookup in a given directory, and clear errors that list the valid forms.
using DistTrain.Data.Sources;
using Xunit;

namespace DistTrain.Data.Tests;

public class DatasetSpecTests
{
    [Theory]
    [InlineData("fashion-mnist", "fashion-mnist", null)]
    [InlineData("Fashion-MNIST:/data/fm", "fashion-mnist", "/data/fm")]
    [InlineData("idx:/a/b:classes=5", "idx", "/a/b")]
    [InlineData("csv:/x/y.csv:label=class", "csv", "/x/y.csv")]
    [InlineData("csv:/odd:dir/y.csv", "csv", "/odd:dir/y.csv")]
    [InlineData("synthetic:quadrants:n=50:seed=2", "synthetic", "quadrants")]
    public void ParsesKindTargetAndOptions(string text, string kind, string? target)
    {
        var spec = DatasetSpec.Parse(text);
        Assert.Equal(kind, spec.Kind);
        Assert.Equal(target, spec.Target);
        var again = DatasetSpec.Parse(spec.ToString());
        Assert.Equal(spec.ToString(), again.ToString());
    }

    [Fact]
    public void CanonicalTextSortsOptions()
        => Assert.Equal("synthetic:xor:n=10:seed=3", DatasetSpec.Parse("synthetic:xor:seed=3:n=10").ToString());

    [Theory]
    [InlineData("mnist", "unknown scheme 'mnist'")]
    [InlineData("hdf5:/x", "unknown scheme 'hdf5'")]
    [InlineData("", "is empty")]
    [InlineData("idx", "gives no directory")]
    [InlineData("csv:", "gives no file")]
    [InlineData("synthetic", "names no synthetic set")]
    [InlineData("synthetic:moons", "unknown synthetic set 'moons'")]
    [InlineData("synthetic:xor:n=0", "n must be a positive integer")]
    [InlineData("synthetic:xor:n=ten", "'ten' is not an integer")]
    [InlineData("synthetic:xor:size=3", "unknown option 'size'")]
    [InlineData("csv:f.csv:label=a:label=b", "twice")]
    [InlineData("csv:f.csv:holdout=1", "holdout must lie in [0, 1)")]
    [InlineData("fashion-mnist:/d:n=3", "takes no options")]
    public void BadSpecsListTheValidForms(string text, string problem)
    {
        var e = Assert.Throws<ArgumentException>(() => DatasetSpec.Parse(text));
        Assert.Contains(problem, e.Message);
        Assert.Contains("Valid dataset forms", e.Message);
        Assert.Contains("fashion-mnist[:DIR]", e.Message);
        Assert.Contains("idx:DIR", e.Message);
        Assert.Contains("csv:FILE[:label=COLUMN]", e.Message);
        Assert.Contains("synthetic:NAME[:n=COUNT]", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IdxDirectoryLoadsBothSplits(bool gzip)
    {
        using var dir = new TempDir();
        dir.WriteSet("train", 6, 3, 3, 10, gzip);
        dir.WriteSet("t10k", 2, 3, 3, 10, gzip);
        var (train, test) = DatasetSpec.Parse($"idx:{dir.Path}").Load();
        Assert.Equal(6, train.Count);
        Assert.Equal(2, test.Count);
        Assert.Equal([1, 3, 3], test.SampleShape);
        Assert.Equal(10, train.Classes);
        Assert.Equal(3 / 255f, train.Features[0]);
    }

    [Fact]
    public void DottedMnistFileNamesAreAccepted()
    {
        using var dir = new TempDir();
        var (i, l) = dir.WriteSet("train", 2, 2, 2, 10, gzip: false);
        File.Move(i, dir.File("train-images.idx3-ubyte"));
        File.Move(l, dir.File("train-labels.idx1-ubyte"));
        Assert.Equal(2, IdxDirectory.Load(dir.Path, DataSplit.Train).Count);
    }

    [Fact]
    public void IdxDirectoryWithAMissingFileSaysWhatItLookedFor()
    {
        using var dir = new TempDir();
        dir.WriteSet("train", 2, 2, 2, 10, gzip: true);
        var e = Assert.Throws<DataException>(() => DatasetSpec.Parse($"idx:{dir.Path}").Load());
        Assert.Contains("t10k-images-idx3-ubyte", e.Message);
        Assert.Contains("t10k-images-idx3-ubyte.gz", e.Message);
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
    }

    [Fact]
    public void IdxClassesOptionBoundsLabels()
    {
        using var dir = new TempDir();
        dir.WriteSet("train", 6, 2, 2, 4, gzip: false); // labels 0..3
        dir.WriteSet("t10k", 2, 2, 2, 4, gzip: false);
        Assert.Equal(4, DatasetSpec.Parse($"idx:{dir.Path}:classes=4").Load().Train.Classes);
        var e = Assert.Throws<DataException>(() => DatasetSpec.Parse($"idx:{dir.Path}:classes=3").Load());
        Assert.Contains("label 3", e.Message);
    }

    [Fact]
    public void FashionMnistFromAGivenDirectoryUsesTheDebianFileNames()
    {
        using var dir = new TempDir();
        dir.WriteSet("train", 4, 28, 28, 10, gzip: true);
        dir.WriteSet("t10k", 3, 28, 28, 10, gzip: true);
        Assert.True(FashionMnist.IsInstalled(dir.Path));
        var (train, test) = DatasetSpec.Parse($"fashion-mnist:{dir.Path}").Load();
        Assert.Equal([1, 28, 28], train.SampleShape);
        Assert.Equal((4, 3), (train.Count, test.Count));
        Assert.Equal("fashion-mnist/train", train.Name);
    }

    [Fact]
    public void FashionMnistMissingSaysWhereAndHow()
    {
        using var dir = new TempDir();
        Assert.False(FashionMnist.IsInstalled(dir.Path));
        var e = Assert.Throws<DataException>(() => FashionMnist.Load(DataSplit.Train, dir.Path));
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("train-images-idx3-ubyte.gz", e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
        Assert.Contains("scripts/setup.sh", e.Message);
    }

    [Fact]
    public void CsvWithTestFileUnifiesClassesAndChecksColumns()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tr.csv"), "y,a,b\n0,1,2\n1,3,4\n");
        File.WriteAllText(dir.File("te.csv"), "y,a,b\n2,5,6\n");
        var (train, test) = DatasetSpec.Parse($"csv:{dir.File("tr.csv")}:label=y:test={dir.File("te.csv")}").Load();
        Assert.Equal(3, train.Classes);
        Assert.Equal(3, test.Classes);
        Assert.Equal([5f, 6f], test.Features);
        File.WriteAllText(dir.File("te2.csv"), "y,a\n0,5\n");
        var e = Assert.Throws<DataException>(() => DatasetSpec.Parse($"csv:{dir.File("tr.csv")}:label=y:test={dir.File("te2.csv")}").Load());
        Assert.Contains("te2.csv", e.Message);
    }

    [Fact]
    public void CsvHoldoutIsASeededDisjointSplitInFileOrder()
    {
        using var dir = new TempDir();
        var lines = new List<string> { "f,label" };
        for (int i = 0; i < 100; i++) lines.Add($"{i},{i % 3}");
        File.WriteAllLines(dir.File("all.csv"), lines);
        var spec = DatasetSpec.Parse($"csv:{dir.File("all.csv")}:holdout=0.25");
        var (train, test) = spec.Load();
        Assert.Equal((75, 25), (train.Count, test.Count));
        var all = train.Features.Concat(test.Features).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (float)i), all);
        Assert.Equal(train.Features.Order(), train.Features);      // file order kept
        Assert.All(test.Features.Zip(test.Labels), p => Assert.Equal((int)p.First % 3, p.Second));
        Assert.Equal(test.Features, spec.Load().Test.Features);   // the same every time
        var (t0, v0) = DatasetSpec.Parse($"csv:{dir.File("all.csv")}:holdout=0").Load();
        Assert.Same(t0.Features, v0.Features);
    }

    [Fact]
    public void SyntheticSpecGivesIndependentTrainAndTest()
    {
        var (train, test) = DatasetSpec.Parse("synthetic:quadrants:n=400:seed=9").Load();
        Assert.Equal((400, 80), (train.Count, test.Count));
        Assert.Equal(Synthetic.Quadrants(400, 9).Fingerprint(), train.Fingerprint());
        Assert.Equal(Synthetic.Quadrants(80, 9, split: DataSplit.Test).Fingerprint(), test.Fingerprint());
        Assert.Equal(25, DatasetSpec.Parse("synthetic:two-spirals:n=10:test-n=25:noise=0.1").Load().Test.Count);
    }
}
