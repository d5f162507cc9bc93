// Free-running forecast of an echo state network [esn, dense] with one input and one output per step: drive the
// reservoir with the true series up to a start, then feed each prediction back as the next input for H steps, and
// compare the H-th prediction with the truth (Jaeger's NRMSE84 for Mackey–Glass, H = 84). The persistence baseline
// predicts the last true value for every horizon.
using DistTrain.Nn;
using DistTrain.Data;
using DistTrain.Nn.Layers;
using DistTrain.Nn.Models;

namespace DistTrain.Training.Solvers;

public sealed record ForecastError(double Nrmse, double PersistenceNrmse, int Forecasts);

public static class EchoStateForecast
{
    /// <summary>
    /// NRMSE of the <paramref name="horizon"/>-step free-running prediction over every test window and every start in
    /// washout, washout + stride, … (while start + horizon fits in the window), normalised by the std of the windows' values.
    /// </summary>
    public static ForecastError FreeRun(Sequential model, Dataset data, int horizon = 84, int stride = 25)
    {
        if (model.Layers.Count != 2 || model.Layers[0] is not EchoStateReservoir r || model.Layers[1] is not Dense d
            || model.InputShape[^1] != 1 || model.OutputShape[^1] != 1 || !r.IncludeInput)
            throw new ArgumentException($"A free-running forecast needs an [esn (with its input), dense] model with one input and one output per step, not {model}.");
        if (data.Targets is null || data.Targets.Length != data.Features.Length)
            throw new ArgumentException($"Dataset {data.Name}: a forecast needs one target (the next value) per input value.", nameof(data));
        if (horizon < 1 || stride < 1) throw new ArgumentException($"horizon ({horizon}) and stride ({stride}) must be positive.");
        int steps = data.SampleLength, n = r.Units;
        var w = d.Weight.Value.Span; float bias = d.Bias?.Value[0] ?? 0f;
        var h = new float[n];
        var u = new float[1];
        double se = 0, sePersist = 0, sum = 0, sumSq = 0;
        long count = 0, values = 0;
        for (int s = 0; s < data.Count; s++)
        {
            var series = data.Features.AsSpan(s * steps, steps);
            foreach (var v in series) { sum += v; sumSq += (double)v * v; values++; }
            var next = data.Targets.AsSpan(s * steps, steps);   // next[t] = value at t + 1
            for (int start = Math.Max(r.Washout, 1); start + horizon - 1 < steps; start += stride)
            {
                Array.Clear(h);
                float y = 0;
                for (int t = 0; t < start; t++) { u[0] = series[t]; r.Step(u, h); y = Readout(w, bias, u[0], h); }
                // y now predicts the value at `start`; feed predictions back for the remaining horizon − 1 steps.
                for (int k = 1; k < horizon; k++) { u[0] = y; r.Step(u, h); y = Readout(w, bias, u[0], h); }
                double truth = next[start + horizon - 2];   // the value at start + horizon − 1
                se += (y - truth) * (y - truth);
                double p = series[start - 1] - truth;
                sePersist += p * p;
                count++;
            }
        }
        if (count == 0) throw new ArgumentException($"Windows of {steps} steps leave no room for a {horizon}-step forecast after the washout of {r.Washout}.");
        double mean = sum / values, std = Math.Sqrt(sumSq / values - mean * mean);
        return new ForecastError(Math.Sqrt(se / count) / std, Math.Sqrt(sePersist / count) / std, (int)count);
    }

    private static float Readout(ReadOnlySpan<float> w, float bias, float u, ReadOnlySpan<float> h)
    {
        float y = bias + w[0] * u;
        for (int i = 0; i < h.Length; i++) y += w[i + 1] * h[i];
        return y;
    }
}
