// What `disttrain train --model M --dataset D` trains: the preset (or spec file) M fitted to D — a preset takes
// D's sample shape and class count — and, for CSV tables, a per-feature standardization fitted on D's
// training split and carried in the spec (so checkpoints, cluster workers, eval and predict all apply it).
using DistTrain.Data;
using DistTrain.Data.Sources;
using DistTrain.Nn.Models;
using DistTrain.Tensors;

namespace DistTrain.Cli.Models;

public static class ModelForData
{
    public static readonly string[] StandardizeModes = ["auto", "per-feature", "none"];

    public const string StandardizeHelp =
        "Input standardization fitted on the training split and stored in the model: auto (per feature for CSV tables, none for images), per-feature, or none.";

    /// <param name="model">A preset name or a spec .json file.</param>
    /// <param name="standardize">auto | per-feature | none.</param>
    /// <param name="note">Receives one line describing what was fitted, when anything was.</param>
    public static ModelSpec Resolve(string model, string datasetText, string standardize = "auto", Action<string>? note = null)
    {
        var mode = standardize.Trim().ToLowerInvariant();
        if (!StandardizeModes.Contains(mode))
            throw new ArgumentException($"--standardize must be one of {string.Join(", ", StandardizeModes)}, not '{standardize}'.");
        var spec = Presets.Resolve(model);
        var data = DatasetSpec.Parse(datasetText);
        bool preset = Presets.Exists(model);
        bool fitStandardize = spec.StandardizeMean is null && (mode == "per-feature" || (mode == "auto" && data.IsTabular));
        if (!preset && !fitStandardize) return spec;

        Dataset? train = null;
        int[] shape; int classes;
        if (!fitStandardize && data.Kind is "fashion-mnist" or "idx") (shape, classes) = data.Describe(); // headers only
        else
        {
            var (tr, te) = data.Load();
            (train, shape, classes) = (tr, tr.SampleShape, Math.Max(tr.Classes, te.Classes));
        }
        if (preset)
        {
            try { spec = spec.FitData(shape, classes); }
            catch (ModelSpecException e)
            {
                throw new ModelSpecException("", $"preset {model} does not fit dataset {datasetText} (samples of shape {Tensor.ShapeString(shape)}, {classes} classes): " +
                    $"{e.Message.TrimEnd('.')}. Pick a preset that takes this data (mlp takes any shape) or write a spec (docs/models.md).");
            }
        }
        if (fitStandardize)
        {
            // Per feature for tables; a pixel's statistics say little, so --standardize per-feature on images is the user's explicit choice.
            var n = Normalization.FitPerFeature(train!);
            spec = spec.WithStandardize(n.Mean, n.Std);
            note?.Invoke($"standardize: per-feature mean and std of {n.Mean.Length} features fitted on {train!.Count:N0} training samples (stored in the model spec)");
        }
        return spec;
    }
}
