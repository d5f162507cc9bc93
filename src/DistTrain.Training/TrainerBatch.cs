// The trainer's reusable per-batch-size buffers (inputs, labels, targets, output gradient) and
// the small helpers around them: accuracy counting and regression targets. Nothing here allocates
// once a batch size has been seen.
using DistTrain.Nn;
using DistTrain.Data;
using DistTrain.Nn.Losses;
using DistTrain.Tensors;

namespace DistTrain.Training;

internal enum Objective { Classification, Binary, Regression }

public sealed partial class Trainer
{
    private sealed class Batch(Tensor x, int[] labels)
    {
        public Tensor X { get; } = x;
        public int[] Labels { get; } = labels;
        public Tensor? TargetBuffer;
        public bool HasTargets;
        private Tensor? _dy;

        public Tensor EnsureDy(Tensor y)
        {
            if (_dy is null || !_dy.SameShape(y)) _dy = new Tensor(y.Shape);
            return _dy;
        }

        /// <summary>Targets shaped like the output y (regression), else null.</summary>
        public Tensor? Targets(Tensor y)
        {
            if (!HasTargets) return null;
            var t = TargetBuffer!;
            if (t.Length != y.Length)
                throw new ArgumentException($"Regression targets have {t.Length / X.Dim(0)} values per sample but the model outputs {y.Length / X.Dim(0)}.");
            return t.SameShape(y) ? t : (TargetBuffer = t.Reshape(y.Shape));
        }
    }

    private Batch BatchFor(Dataset data, int n)
    {
        if (!_batches.TryGetValue(n, out var b))
        {
            var shape = new int[_model.InputShape.Length + 1];
            shape[0] = n;
            _model.InputShape.CopyTo(shape, 1);
            b = new Batch(new Tensor(shape), new int[n]);
            _batches[n] = b;
        }
        return b;
    }

    /// <summary>Regression targets: the dataset's own, or the input itself (an autoencoder).</summary>
    private void GatherTargets(Dataset data, ReadOnlySpan<int> indices, Batch b)
    {
        if (_objective != Objective.Regression) { b.HasTargets = false; return; }
        b.HasTargets = true;
        if (data.Targets is null)
        {
            b.TargetBuffer ??= b.X;
            if (b.TargetBuffer.Buffer != b.X.Buffer) b.TargetBuffer = b.X;
            return;
        }
        int per = data.Targets.Length / Math.Max(1, data.Count);
        if (b.TargetBuffer is null || b.TargetBuffer.Buffer == b.X.Buffer || b.TargetBuffer.Length != per * indices.Length)
            b.TargetBuffer = new Tensor(indices.Length, per);
        var dst = b.TargetBuffer.Span;
        for (int i = 0; i < indices.Length; i++)
            data.Targets.AsSpan(indices[i] * per, per).CopyTo(dst.Slice(i * per, per));
    }

    private int CountCorrect(Tensor y, ReadOnlySpan<int> labels)
    {
        if (_objective == Objective.Regression) return 0;
        int n = labels.Length, k = y.Length / Math.Max(1, n), correct = 0;
        var v = y.Span;
        for (int i = 0; i < n; i++)
        {
            var row = v.Slice(i * k, k);
            int pred;
            if (_objective == Objective.Binary && k == 1) pred = row[0] > 0 ? 1 : 0;
            else
            {
                pred = 0;
                for (int j = 1; j < k; j++) if (row[j] > row[pred]) pred = j;
            }
            if (pred == labels[i]) correct++;
        }
        return correct;
    }

    private static Objective ObjectiveOf(Loss loss) => loss switch
    {
        { ComparesWithTargets: true } => Objective.Regression,
        MeanSquaredError => Objective.Regression,
        BinaryCrossEntropyWithLogits or PerceptronCriterion => Objective.Binary,
        _ => Objective.Classification,
    };
}
