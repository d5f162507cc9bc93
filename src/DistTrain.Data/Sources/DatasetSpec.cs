// Parses the CLI's --dataset strings (fashion-mnist[:DIR], idx:DIR, csv:FILE[:label=COL],
// synthetic:NAME[:n=N]) and loads the (train, test) pair they name. Same text, same data, any node.
using System.Globalization;
using DistTrain.Data.Plans;

namespace DistTrain.Data.Sources;

public sealed class DatasetSpec
{
    public const string ValidForms =
        "Valid dataset forms:\n" +
        "  fashion-mnist[:DIR]                         Fashion-MNIST from " + FashionMnist.DefaultDirectory + " or DIR\n" +
        "  idx:DIR[:classes=K]                         MNIST-layout files in DIR: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...\n" +
        "  csv:FILE[:label=COLUMN][:test=FILE][:holdout=F]   header row, numeric features; label column default 'label';\n" +
        "                                              without test=, a seeded fraction F (default 0.2) of FILE is held out (0: test on FILE)\n" +
        "  synthetic:NAME[:n=COUNT][:test-n=COUNT][:seed=S][:margin=M][:noise=X]   NAME: quadrants, spirals, xor, separable, mackey-glass (n default 1000; for mackey-glass n counts windows of 400 steps)\n" +
        "  " + Graphs.GraphDatasets.Help;

    static readonly Dictionary<string, string[]> AllowedOptions = new()
    {
        ["fashion-mnist"] = [],
        ["idx"] = ["classes"],
        ["csv"] = ["label", "test", "holdout"],
        ["synthetic"] = ["n", "test-n", "seed", "margin", "noise"],
        ["graph"] = Graphs.GraphDatasets.Options,
    };

    DatasetSpec(string kind, string? target, SortedDictionary<string, string> options)
    {
        Kind = kind; Target = target; Options = options;
    }

    /// <summary>fashion-mnist, idx, csv or synthetic.</summary>
    public string Kind { get; }
    /// <summary>The directory, file or synthetic set name after the scheme (null for plain fashion-mnist).</summary>
    public string? Target { get; }
    public IReadOnlyDictionary<string, string> Options { get; }

    /// <summary>Parses a spec; throws ArgumentException listing the valid forms when it is malformed.</summary>
    public static DatasetSpec Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw Bad(text, "is empty");
        var parts = text.Trim().Split(':');
        var kind = parts[0].ToLowerInvariant();
        if (!AllowedOptions.TryGetValue(kind, out var allowed))
            throw Bad(text, $"has unknown scheme '{parts[0]}'");
        // Trailing key=value parts are options; what is left between the scheme and them is the
        // target (re-joined, so a path may itself contain ':').
        int firstOption = parts.Length;
        while (firstOption > 1 && IsOption(parts[firstOption - 1])) firstOption--;
        var target = firstOption > 1 ? string.Join(':', parts[1..firstOption]) : null;
        var options = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = firstOption; i < parts.Length; i++)
        {
            int eq = parts[i].IndexOf('=');
            string key = parts[i][..eq].ToLowerInvariant(), value = parts[i][(eq + 1)..];
            if (Array.IndexOf(allowed, key) < 0)
                throw Bad(text, allowed.Length == 0 ? $"takes no options, but has '{key}'" : $"has unknown option '{key}' for {kind} (valid: {string.Join(", ", allowed)})");
            if (!options.TryAdd(key, value)) throw Bad(text, $"gives option '{key}' twice");
        }
        if (kind != "fashion-mnist" && string.IsNullOrEmpty(target))
            throw Bad(text, kind is "synthetic" or "graph" ? $"names no {(kind == "graph" ? "graph" : "synthetic set")}" : $"gives no {(kind == "idx" ? "directory" : "file")} after '{kind}:'");
        var spec = new DatasetSpec(kind, target, options);
        spec.Validate(text);
        return spec;
    }

    /// <summary>Loads the train and test datasets this spec names (same class count on both).</summary>
    public (Dataset Train, Dataset Test) Load()
    {
        switch (Kind)
        {
            case "fashion-mnist":
            {
                var dir = FashionMnist.Locate(Target);
                return (FashionMnist.Load(DataSplit.Train, dir), FashionMnist.Load(DataSplit.Test, dir));
            }
            case "idx":
            {
                int classes = Int("classes", 10);
                return (IdxDirectory.Load(Target!, DataSplit.Train, classes), IdxDirectory.Load(Target!, DataSplit.Test, classes));
            }
            case "csv":
                return LoadCsv();
            case "graph":
                return Graphs.GraphDatasets.Load(Target!, Options);
            default:
            {
                int n = Int("n", 1000), testN = Int("test-n", Math.Max(1, n / 5)), seed = Int("seed", 0);
                float margin = Float("margin", 0f), noise = Float("noise", 0f);
                return (Synthetic.Create(Target!, n, seed, margin, noise, DataSplit.Train),
                        Synthetic.Create(Target!, testN, seed, margin, noise, DataSplit.Test));
            }
        }
    }

    /// <summary>The training split's per-sample shape and class count, read from file headers where the format has
    /// them (Fashion-MNIST, IDX) and otherwise by loading the data.</summary>
    public (int[] SampleShape, int Classes) Describe()
    {
        switch (Kind)
        {
            case "fashion-mnist":
                return ([1, 28, 28], FashionMnist.Classes);
            case "idx":
            {
                var stem = IdxDirectory.Stem(DataSplit.Train, labels: false);
                var file = IdxDirectory.Find(Target!, stem) ?? throw new DataException(Path.Combine(Target!, stem),
                    $"not found: looked in {Path.GetFullPath(Target!)} for {string.Join(", ", IdxDirectory.Candidates(stem))}", IdxReader.InstallHint);
                var (_, rows, cols) = IdxReader.ReadImageHeader(file);
                return ([1, rows, cols], Int("classes", 10));
            }
            default:
            {
                var (train, test) = Load();
                return (train.SampleShape, Math.Max(train.Classes, test.Classes));
            }
        }
    }

    /// <summary>The files the training split is read from, for messages that name them (a worker whose copy differs from the
    /// coordinator's); empty for generated data and where the files cannot be found.</summary>
    public IReadOnlyList<string> TrainFiles()
    {
        string? dir = Kind switch
        {
            "idx" => Target,
            "fashion-mnist" => Target ?? FashionMnist.DefaultDirectory,
            _ => null,
        };
        if (dir is not null)
            return new[] { false, true }.Select(labels => IdxDirectory.Find(dir, IdxDirectory.Stem(DataSplit.Train, labels)))
                .OfType<string>().Select(Path.GetFullPath).ToArray();
        return Kind is "csv" or "graph" && Target is not null ? [Path.GetFullPath(Target)] : [];
    }

    /// <summary>", read from FILE (sha256 HEX), ..." for the training files of <paramref name="spec"/>; empty when it names none.</summary>
    public static string DescribeTrainFiles(string spec)
    {
        try
        {
            var files = Parse(spec).TrainFiles();
            return files.Count == 0 ? "" : ", read from " + string.Join(", ", files.Select(f =>
            {
                using var s = File.OpenRead(f);
                return $"{f} (sha256 {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(s))})";
            }));
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException) { return ""; }
    }

    /// <summary>True for data whose samples are feature vectors (CSV tables), which are standardized per feature.</summary>
    public bool IsTabular => Kind == "csv";

    /// <summary>The canonical text (options sorted): Parse(ToString()) gives an equal spec.</summary>
    public override string ToString()
    {
        var s = Kind + (Target is null ? "" : ":" + Target);
        foreach (var (k, v) in Options) s += $":{k}={v}";
        return s;
    }

    (Dataset, Dataset) LoadCsv()
    {
        var label = Options.GetValueOrDefault("label", "label");
        var train = CsvReader.Load(Target!, label);
        Dataset test;
        if (Options.TryGetValue("test", out var testFile))
            test = CsvReader.Load(testFile, label);
        else
        {
            double holdout = Float("holdout", 0.2f);
            if (holdout == 0) test = train;
            else
            {
                // A fixed-key shuffle (not the training seed): the split is a property of the data.
                var perm = new int[train.Count];
                for (int i = 0; i < perm.Length; i++) perm[i] = i;
                Xoshiro256.ForKey(0x43535653504C4954 /* "CSVSPLIT" */, (ulong)perm.Length).Shuffle(perm);
                int testCount = (int)Math.Round(train.Count * holdout);
                if (testCount < 1 || testCount >= train.Count)
                    throw new DataException(Target!, $"has {train.Count} rows: a holdout of {holdout} leaves {testCount} for test and {train.Count - testCount} for training",
                        "Choose holdout so both parts are non-empty, give test=FILE, or holdout=0 to test on the training rows");
                var testIdx = perm[..testCount]; var trainIdx = perm[testCount..];
                Array.Sort(testIdx); Array.Sort(trainIdx); // keep file order within each part
                test = train.Subset(testIdx, train.Name + "/test");
                train = train.Subset(trainIdx, train.Name + "/train");
            }
        }
        if (test.SampleLength != train.SampleLength)
            throw new DataException(testFile ?? Target!, $"has {test.SampleLength} features where the training file has {train.SampleLength}",
                "Give train and test files with the same columns");
        int classes = Math.Max(train.Classes, test.Classes);
        return (train.WithClasses(classes), test.WithClasses(classes));
    }

    void Validate(string text)
    {
        foreach (var key in new[] { "classes", "n", "test-n" })
            if (Options.ContainsKey(key) && Int(key, 0) < 1) throw Bad(text, $"option {key} must be a positive integer");
        if (Options.ContainsKey("seed")) Int("seed", 0);
        if (Options.ContainsKey("holdout") && Float("holdout", 0) is var h && !(h >= 0 && h < 1))
            throw Bad(text, "option holdout must lie in [0, 1)");
        if (Options.ContainsKey("margin") && Float("margin", 0) is var m && !(m >= 0 && m < 1))
            throw Bad(text, "option margin must lie in [0, 1)");
        if (Options.ContainsKey("noise") && Float("noise", 0) is var z && !(z >= 0))
            throw Bad(text, "option noise must be non-negative");
        if (Kind == "synthetic" && !Synthetic.Names.Contains(Target!.ToLowerInvariant()) && Target!.ToLowerInvariant() != "two-spirals")
            throw Bad(text, $"names unknown synthetic set '{Target}' (valid: {string.Join(", ", Synthetic.Names)})");
        if (Options.TryGetValue("label", out var l) && l.Length == 0) throw Bad(text, "option label is empty");
        if (Kind == "graph")
        {
            try { Graphs.GraphDatasets.Validate(Target!, Options); }
            catch (ArgumentException e) { throw Bad(text, e.Message); }
        }
    }

    int Int(string key, int fallback)
    {
        if (!Options.TryGetValue(key, out var v)) return fallback;
        return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i
            : throw Bad(ToString(), $"option {key}='{v}' is not an integer");
    }

    float Float(string key, float fallback)
    {
        if (!Options.TryGetValue(key, out var v)) return fallback;
        return float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && float.IsFinite(f) ? f
            : throw Bad(ToString(), $"option {key}='{v}' is not a number");
    }

    static bool IsOption(string part)
    {
        int eq = part.IndexOf('=');
        if (eq < 1) return false;
        foreach (var c in part.AsSpan(0, eq))
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiLetterUpper(c) || c == '-')) return false;
        return true;
    }

    static ArgumentException Bad(string text, string problem) => new($"Dataset spec '{text}' {problem}.\n{ValidForms}");
}
