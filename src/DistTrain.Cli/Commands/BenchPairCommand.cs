// `disttrain bench pair`: how much two cores of this machine give over one, for our own work, measured so that the
// host's drift cancels. Two threads each own an independent copy of the work (a training step of a model, or a
// one-thread SGEMM); phases of ~--phase-ms alternate in one process: "alone" (thread A works, B waits), "pair"
// (A and B work at once, sharing nothing but the machine) and, for SGEMM, "team" (one two-thread SGEMM on A).
// The per-round ratio pair / alone is the ceiling of any two-worker speed-up on this host in that sitting: two
// worker processes of a cluster do the same compute plus communication, and a two-thread SGEMM team the same
// arithmetic plus sharing. Phases are seconds apart at most, so a host that slows down for a minute slows both.
// A pair phase counts only the units each copy ran while the other was running too (Overlapped).
using System.CommandLine;
using System.Diagnostics;
using DistTrain.Cli.Bench;
using DistTrain.Data;
using DistTrain.Nn.Models;
using DistTrain.Nn.Training;
using DistTrain.Training;
using DistTrain.Tensors;
using DistTrain.Tensors.Kernels;

namespace DistTrain.Cli.Commands;

public sealed class BenchPairCommand : ICommandFactory
{
    public string? Parent => "bench";

    public Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "Preset or spec file whose training step each thread runs (default cnn unless --gemm is given)." };
        var batch = new Option<int>("--batch", "-b") { Description = "Batch size of each thread's step.", DefaultValueFactory = _ => 128 };
        var gemm = new Option<int?>("--gemm") { Description = "Instead of a model: square SGEMM n×n×n, one thread per copy; adds the two-thread team phase." };
        var rounds = new Option<int>("--rounds") { Description = "Rounds of alone / pair (/ team) phases.", DefaultValueFactory = _ => 30 };
        var phaseMs = new Option<double>("--phase-ms") { Description = "Target length of one phase, ms (at least one unit of work runs).", DefaultValueFactory = _ => 500 };
        var warmup = new Option<double>("--warmup-seconds") { Description = "Both copies run this long before the first phase (the JIT tiers hot methods up for seconds).", DefaultValueFactory = _ => 8 };
        var json = new Option<bool>("--json") { Description = "One JSON object per line." };
        var cmd = new Command("pair", "Two-core ceiling: the same one-thread work alone and as two independent copies at once, alternating, median ratio.")
        {
            model, batch, gemm, rounds, phaseMs, warmup, json,
        };
        cmd.SetAction(r => Training.CliErrors.Guard(() =>
        {
            int n = r.GetValue(rounds), b = r.GetValue(batch);
            double ms = r.GetValue(phaseMs), warm = r.GetValue(warmup);
            int? g = r.GetValue(gemm);
            string? m = r.GetValue(model);
            if (n < 1) throw new ArgumentException($"--rounds must be at least 1, not {n}.");
            if (b < 1) throw new ArgumentException($"--batch must be at least 1, not {b}.");
            if (warm < 0) throw new ArgumentException($"--warmup-seconds must not be negative, not {warm}.");
            if (ms <= 0) throw new ArgumentException($"--phase-ms must be positive, not {ms}.");
            if (g is { } gn && gn < 1) throw new ArgumentException($"--gemm must be a positive size, not {gn}.");
            if (g is not null && m is not null) throw new ArgumentException("--gemm and --model exclude each other: give one kind of work.");
            if (Environment.ProcessorCount < 2) throw new ArgumentException($"bench pair needs two CPUs; this machine shows {Environment.ProcessorCount}.");
            Compute.Threads = 1;
            var output = new BenchOutput(r.GetValue(json));
            var row = g is { } size ? RunGemm(size, n, ms, warm) : RunModel(m ?? "cnn", b, n, ms, warm);
            output.Note($"two-core ceiling on {Simd.Path}: {n} rounds of ~{ms} ms phases, alternating in one process");
            output.Add(row);
            output.Flush();
            return 0;
        }));
        return cmd;
    }

    /// <summary>One copy of the work: <c>Run()</c> does one unit and returns its size (samples or flops).</summary>
    private interface IWork { double Run(); }

    private sealed class StepWork(string modelName, int batch) : IWork
    {
        private readonly (ModelSpec Spec, Sequential Net, Trainer Trainer, Dataset Data, int[][] Step) _s = BenchTrainCommand.NewStep(modelName, batch);

        public double Run() { _s.Trainer.TrainStep(_s.Data, _s.Step); return batch; }
    }

    private sealed class GemmWork(int n, int threads) : IWork
    {
        private readonly float[] _a = Filled(n * n, 1), _b = Filled(n * n, 2), _c = new float[n * n];

        public double Run() { Gemm.Sgemm(false, false, n, n, n, _a, n, _b, n, _c, n, false, threads); return 2.0 * n * n * n; }

        private static float[] Filled(int len, int seed)
        {
            var rng = new Random(seed); var x = new float[len];
            for (int i = 0; i < x.Length; i++) x[i] = (float)rng.NextDouble() - 0.5f;
            return x;
        }
    }

    private static Dictionary<string, object?> RunModel(string model, int batch, int rounds, double phaseMs, double warmSeconds)
    {
        var res = Alternate(() => new StepWork(model, batch), null, rounds, phaseMs, warmSeconds);
        var row = new Dictionary<string, object?> { ["work"] = "train_step", ["model"] = Presets.Resolve(model).Name, ["batch"] = batch, ["unit"] = "samples/s" };
        return Fill(row, res);
    }

    private static Dictionary<string, object?> RunGemm(int n, int rounds, double phaseMs, double warmSeconds)
    {
        var res = Alternate(() => new GemmWork(n, 1), new GemmWork(n, 2), rounds, phaseMs, warmSeconds);
        var row = new Dictionary<string, object?> { ["work"] = "sgemm", ["m"] = n, ["n"] = n, ["k"] = n, ["unit"] = "GFLOP/s" };
        return Fill(row, res, 1e-9);
    }

    private static Dictionary<string, object?> Fill(Dictionary<string, object?> row, Result r, double scale = 1)
    {
        row["rounds"] = r.PairRatio.Count;
        row["alone"] = Math.Round(Stats.Median(r.Alone) * scale, 1);
        row["pair_sum"] = Math.Round(Stats.Median(r.Pair) * scale, 1);
        row["pair_over_alone"] = Math.Round(Stats.Median(r.PairRatio), 3);
        row["pair_over_alone_p25"] = Math.Round(Stats.Quantile(r.PairRatio, 0.25), 3);
        row["pair_over_alone_p75"] = Math.Round(Stats.Quantile(r.PairRatio, 0.75), 3);
        if (r.Team.Count > 0)
        {
            row["team"] = Math.Round(Stats.Median(r.Team) * scale, 1);
            row["team_over_alone"] = Math.Round(Stats.Median(r.TeamRatio), 3);
            row["team_over_alone_p25"] = Math.Round(Stats.Quantile(r.TeamRatio, 0.25), 3);
            row["team_over_alone_p75"] = Math.Round(Stats.Quantile(r.TeamRatio, 0.75), 3);
            row["team_over_pair"] = Math.Round(Stats.Median(r.TeamRatio.Zip(r.PairRatio, (t, p) => t / p).ToList()), 3);
        }
        return row;
    }

    private sealed record Result(List<double> Alone, List<double> Pair, List<double> Team, List<double> PairRatio, List<double> TeamRatio);

    /// <summary>Rounds of alone (A), pair (A and B), team (the two-thread work on A, when given), then the next
    /// round's alone; each round's ratios divide by the mean of the alone phases on either side of it.</summary>
    private static Result Alternate(Func<IWork> make, IWork? team, int rounds, double phaseMs, double warmSeconds)
    {
        var a = make();
        IWork? b = null;
        // B builds and owns its copy on its own thread (per-thread scratch is made where it is used).
        using var go = new SemaphoreSlim(0);
        using var done = new SemaphoreSlim(0);
        var aMarks = new List<long>(); var bMarks = new List<long>();
        double bSize = 0;
        bool stop = false;
        long phaseTicks = (long)(phaseMs * Stopwatch.Frequency / 1000), warmTicks = (long)(warmSeconds * Stopwatch.Frequency);
        Exception? bFailed = null;
        var thread = new Thread(() =>
        {
            try
            {
                b = make();
                Phase(b, warmTicks, bMarks);
                done.Release();
                while (true)
                {
                    go.Wait();
                    if (Volatile.Read(ref stop)) return;
                    bSize = Phase(b, phaseTicks, bMarks);
                    done.Release();
                }
            }
            catch (Exception e) { bFailed = e; done.Release(); } // the main thread rethrows it instead of waiting forever
        }) { IsBackground = true, Name = "bench-pair-b" };
        thread.Start();
        Phase(a, warmTicks, aMarks);
        if (team is not null) Phase(team, warmTicks / 4, aMarks);
        done.Wait();
        if (bFailed is not null) throw new InvalidOperationException("bench pair: the second copy failed: " + bFailed.Message, bFailed);

        var alone = new List<double>(); var pair = new List<double>(); var teamRates = new List<double>();
        var pairRatio = new List<double>(); var teamRatio = new List<double>();
        double prevAlone = Alone(a, phaseTicks, aMarks);
        alone.Add(prevAlone);
        var bar = new ProgressLine(rounds);
        for (int r = 0; r < rounds; r++)
        {
            go.Release();
            double aSize = Phase(a, phaseTicks, aMarks);
            done.Wait();
            if (bFailed is not null) throw new InvalidOperationException("bench pair: the second copy failed: " + bFailed.Message, bFailed);
            double p = Overlapped(aMarks, aSize, bMarks, bSize);
            double t = team is null ? double.NaN : Alone(team, phaseTicks, aMarks);
            double nextAlone = Alone(a, phaseTicks, aMarks);
            double mid = 0.5 * (prevAlone + nextAlone);
            pair.Add(p); pairRatio.Add(p / mid);
            if (team is not null) { teamRates.Add(t); teamRatio.Add(t / mid); }
            alone.Add(nextAlone); prevAlone = nextAlone;
            bar.Step(pairRatio);
        }
        bar.Done();
        Volatile.Write(ref stop, true);
        go.Release();
        thread.Join();
        return new Result(alone, pair, teamRates, pairRatio, teamRatio);
    }

    /// <summary>Units of work until the phase's time is up (at least one), back to back; returns the size of one unit
    /// and leaves the start of the first unit and the end of every unit in <paramref name="marks"/>.</summary>
    private static double Phase(IWork w, long ticks, List<long> marks)
    {
        marks.Clear();
        long t0 = Stopwatch.GetTimestamp(), end = t0 + ticks;
        marks.Add(t0);
        double size;
        do { size = w.Run(); marks.Add(Stopwatch.GetTimestamp()); } while (marks[^1] < end);
        return size;
    }

    /// <summary>Work per second of the two copies together, counting only the time both ran: the two phases start
    /// a wake-up apart and end up to a unit apart, and a unit run while the other copy had stopped would count
    /// one core's speed as two cores' share. Each copy's rate comes from its units that lie wholly inside the
    /// overlap; a copy with none there (a unit longer than the overlap) falls back to its whole phase.</summary>
    public static double Overlapped(List<long> a, double aSize, List<long> b, double bSize)
    {
        long from = Math.Max(a[0], b[0]), to = Math.Min(a[^1], b[^1]);
        return Rate(a, aSize, from, to) + Rate(b, bSize, from, to);
    }

    /// <summary>Size per second of the units wholly inside [from, to] (all of them when none is).</summary>
    private static double Rate(List<long> marks, double size, long from, long to)
    {
        int first = -1, last = -1; // unit i runs from marks[i] to marks[i + 1]
        for (int i = 0; i + 1 < marks.Count; i++)
            if (marks[i] >= from && marks[i + 1] <= to) { if (first < 0) first = i; last = i; }
        if (first < 0) { first = 0; last = marks.Count - 2; }
        return (last - first + 1) * size / ((marks[last + 1] - marks[first]) / (double)Stopwatch.Frequency);
    }

    /// <summary>One copy alone for a phase: its size per second.</summary>
    private static double Alone(IWork w, long ticks, List<long> marks)
    {
        double size = Phase(w, ticks, marks);
        return Rate(marks, size, marks[0], marks[^1]);
    }

    /// <summary>Progress on stderr (rounds done, the running median ratio); stdout keeps only the result.</summary>
    private sealed class ProgressLine(int total)
    {
        private readonly bool _tty = !Console.IsErrorRedirected;

        public void Step(List<double> ratios)
        {
            if (_tty) Console.Error.Write($"\rbench pair: round {ratios.Count}/{total}, pair/alone median so far {Stats.Median(ratios):F2}   ");
        }

        public void Done() { if (_tty) Console.Error.WriteLine(); }
    }

}
