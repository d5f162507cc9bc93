// `disttrain plot RUN... [--out DIR]`: PNG plots of finished or running runs from their metrics.jsonl
// (loss and accuracy per epoch overlaid, step-time breakdown) and, for a classifier checkpoint in a run
// folder, its test-split confusion matrix.
using System.CommandLine;
using DistTrain.Cli.Evaluation;
using DistTrain.Cli.Plotting;
using DistTrain.Cli.Training;

namespace DistTrain.Cli.Commands;

public sealed class PlotCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var runs = new Argument<string[]>("RUN") { Description = "Run folders (written by `disttrain train --out DIR`) or metrics.jsonl files.", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string?>("--out", "-o") { Description = "Folder for the PNGs (default: the run's folder for one run, ./plots for several)." };
        var noConfusion = new Option<bool>("--no-confusion") { Description = "Skip the confusion matrix (it evaluates each run's checkpoint on its test split)." };
        var dataset = new Option<string?>("--dataset") { Description = "Dataset for the confusion matrix where a run's checkpoints do not record theirs." };
        var cmd = new Command("plot", "Draw loss, accuracy, step-time and confusion-matrix PNGs of one or more runs.") { runs, output, noConfusion, dataset };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var dirs = r.GetValue(runs)!;
            var metrics = dirs.Select(RunMetrics.Load).ToList();
            var names = metrics.Select(m => m.Name).ToList();
            if (names.Distinct(StringComparer.Ordinal).Count() != names.Count)
                throw new ArgumentException($"Two runs share a folder name ({string.Join(", ", names)}); legends would not tell them apart. Rename or copy one folder.");
            var outDir = r.GetValue(output) ?? (dirs.Length == 1 && Directory.Exists(dirs[0]) ? dirs[0] : "plots");
            var written = RunPlots.Write(metrics, outDir).ToList();
            if (!r.GetValue(noConfusion))
                foreach (var dir in dirs.Where(Directory.Exists))
                {
                    var matrix = RunEvaluation.TryConfusion(dir, out var classNames, out var skipped, r.GetValue(dataset));
                    if (matrix is null) { Console.Error.WriteLine($"note: no confusion matrix for {dir}: {skipped}."); continue; }
                    var file = dirs.Length == 1 ? "confusion.png" : $"confusion_{Path.GetFileName(Path.GetFullPath(dir))}.png";
                    written.Add(RunPlots.SavePng(RunPlots.Confusion(matrix, classNames), Path.Combine(outDir, file)));
                }
            foreach (var f in written) Console.WriteLine(f);
            return 0;
        }));
        return cmd;
    }
}
