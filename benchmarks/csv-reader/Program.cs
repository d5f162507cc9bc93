using System.Diagnostics;
using System.Globalization;
// CsvReader (Sep + csFastFloat) against the old parser on a 100,000 × 64 numeric CSV (about 60 MB, columns
// spanning four orders of magnitude), alternating, 7 reps each; checks both give the same floats and labels.
var path = args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), "disttrain-csv-bench.csv");
if (!File.Exists(path))
{
    var rng = new Random(1);
    using var w = new StreamWriter(path);
    w.WriteLine(string.Join(",", Enumerable.Range(0, 64).Select(i => $"f{i}")) + ",label");
    for (int r = 0; r < 100_000; r++)
        w.WriteLine(string.Join(",", Enumerable.Range(0, 64).Select(i => (rng.NextDouble() * Math.Pow(10, i % 4) - 3).ToString("G7", CultureInfo.InvariantCulture))) + "," + rng.Next(10));
}
Console.WriteLine($"{new FileInfo(path).Length / 1e6:F1} MB");
var oldT = new List<double>(); var newT = new List<double>();
for (int rep = 0; rep < 7; rep++)
{
    var sw = Stopwatch.StartNew(); var a = OldCsv.OldCsvReader.Load(path); oldT.Add(sw.Elapsed.TotalSeconds);
    sw.Restart(); var b = DistTrain.Data.Sources.CsvReader.Load(path); newT.Add(sw.Elapsed.TotalSeconds);
    if (!a.Features.AsSpan().SequenceEqual(b.Features) || !a.Labels.AsSpan().SequenceEqual(b.Labels)) throw new Exception("differ");
}
oldT.Sort(); newT.Sort();
Console.WriteLine($"old median {oldT[3]:F3} s, sep median {newT[3]:F3} s, ratio {oldT[3] / newT[3]:F2}x");
