// Finds and loads MNIST-layout IDX directories: Fashion-MNIST at /usr/share/datasets/fashion-mnist
// (Debian's dataset-fashion-mnist ships train-/t10k- images/labels as .gz) or any directory given.
namespace DistTrain.Data.Sources;

public enum DataSplit { Train, Test }

public static class IdxDirectory
{
    /// <summary>The MNIST file stem of a split's images or labels ("train-images-idx3-ubyte", ...).</summary>
    public static string Stem(DataSplit split, bool labels)
        => (split == DataSplit.Train ? "train" : "t10k") + (labels ? "-labels-idx1-ubyte" : "-images-idx3-ubyte");

    /// <summary>The names tried for a stem, in order: plain, .gz, then the dotted variant some
    /// MNIST mirrors use ("train-images.idx3-ubyte"), plain and .gz.</summary>
    public static string[] Candidates(string stem)
    {
        int cut = stem.LastIndexOf('-', stem.LastIndexOf('-') - 1);
        var dotted = stem[..cut] + "." + stem[(cut + 1)..];
        return [stem, stem + ".gz", dotted, dotted + ".gz"];
    }

    /// <summary>The path of the first candidate present in <paramref name="directory"/>, or null.</summary>
    public static string? Find(string directory, string stem)
    {
        foreach (var c in Candidates(stem))
        {
            var p = Path.Combine(directory, c);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>Loads one split of an MNIST-layout directory as (1, rows, cols) samples in [0, 1].</summary>
    public static Dataset Load(string directory, DataSplit split, int classes = 10, string? name = null)
    {
        var images = Require(directory, Stem(split, labels: false));
        var labels = Require(directory, Stem(split, labels: true));
        return IdxReader.Load(images, labels, classes, name ?? $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(directory))}/{split.ToString().ToLowerInvariant()}");
    }

    static string Require(string directory, string stem)
        => Find(directory, stem) ?? throw new DataException(
            Path.Combine(directory, stem),
            $"not found: looked in {Path.GetFullPath(directory)} for {string.Join(", ", Candidates(stem))}",
            IdxReader.InstallHint);
}

public static class FashionMnist
{
    /// <summary>Where Debian's dataset-fashion-mnist package installs the four .gz files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const int Classes = 10;

    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The directory to read: <paramref name="directory"/> when given, else the default.
    /// Throws DataException, naming where it looked and how to install, when the files are absent.</summary>
    public static string Locate(string? directory = null)
    {
        var dir = directory ?? DefaultDirectory;
        foreach (var split in new[] { DataSplit.Train, DataSplit.Test })
            foreach (var labels in new[] { false, true })
                if (IdxDirectory.Find(dir, IdxDirectory.Stem(split, labels)) is null)
                    throw new DataException(Path.Combine(dir, IdxDirectory.Stem(split, labels)),
                        $"Fashion-MNIST not found: looked in {Path.GetFullPath(dir)} for {string.Join(", ", IdxDirectory.Candidates(IdxDirectory.Stem(split, labels)))}",
                        IdxReader.InstallHint);
        return dir;
    }

    /// <summary>True when all four files are present in the directory (default: the Debian path).</summary>
    public static bool IsInstalled(string? directory = null)
    {
        var dir = directory ?? DefaultDirectory;
        foreach (var split in new[] { DataSplit.Train, DataSplit.Test })
            foreach (var labels in new[] { false, true })
                if (IdxDirectory.Find(dir, IdxDirectory.Stem(split, labels)) is null) return false;
        return true;
    }

    /// <summary>Loads the 60,000-image train or 10,000-image test split, (1, 28, 28) in [0, 1].</summary>
    public static Dataset Load(DataSplit split, string? directory = null)
        => IdxDirectory.Load(Locate(directory), split, Classes, $"fashion-mnist/{split.ToString().ToLowerInvariant()}");
}
