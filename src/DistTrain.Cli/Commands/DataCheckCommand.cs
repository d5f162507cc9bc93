// `disttrain data check --dataset SPEC`: loads a dataset as training would and prints counts, shape,
// class balance, pixel/feature statistics and the SHA-256 fingerprint (the real-file check the tests leave out).
using System.CommandLine;
using DistTrain.Data;
using DistTrain.Data.Sources;

namespace DistTrain.Cli.Commands;

public sealed class DataCheckCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var dataset = new Option<string>("--dataset") { Description = "fashion-mnist[:DIR] | idx:DIR | csv:FILE[:label=COL] | synthetic:NAME[:n=N]", DefaultValueFactory = _ => "fashion-mnist" };
        var check = new Command("check", "Load a dataset's train and test splits and print what was read.") { dataset };
        check.SetAction(parse => Run(parse.GetValue(dataset)!));
        return new Command("data", "Inspect datasets.") { check };
    }

    static int Run(string text)
    {
        try
        {
            var spec = DatasetSpec.Parse(text);
            var (train, test) = spec.Load();
            Console.WriteLine($"dataset {spec}");
            foreach (var (split, d) in new[] { ("train", train), ("test", test) })
            {
                var counts = new int[d.Classes];
                foreach (var l in d.Labels) counts[l]++;
                var g = Normalization.FitGlobal(d);
                Console.WriteLine($"  {split}: {d.Count} samples of shape ({string.Join(",", d.SampleShape)}), {d.Classes} classes " +
                                  $"[{string.Join(" ", counts)}], mean {g.Mean[0]:F4}, std {g.Std[0]:F4}, sha256 {d.Fingerprint()}");
            }
            return 0;
        }
        catch (Exception e) when (e is DataException or ArgumentException)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
    }
}
