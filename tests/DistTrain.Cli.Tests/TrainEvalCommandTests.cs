// `disttrain train` → `disttrain eval` end to end, in-process (Program.BuildRoot().Parse(args).Invoke()),
// on a tiny synthetic set in a temp folder; plus determinism of the written file, bad input and bench train.
using System.Security.Cryptography;
using System.Text.Json;
using DistTrain.Training.Checkpoints;
using DistTrain.Cli;
using Xunit;

namespace DistTrain.Cli.Tests;

[CollectionDefinition("Console", DisableParallelization = true)]
public sealed class ConsoleCollection;

[Collection("Console")]
public sealed class TrainEvalCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"disttrain-cli-{Guid.NewGuid():N}");

    public TrainEvalCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    private string[] TrainArgs(string outDir, params string[] extra) =>
    [
        "train", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=400:test-n=200:margin=0.05:seed=2",
        "--epochs", "8", "--batch-size", "20", "--micro-batch", "10", "--optimizer", "adam", "--lr", "0.05", "--seed", "4",
        "--out", Path.Combine(_dir, outDir), .. extra,
    ];

    [Fact]
    public void One_process_and_cluster_runs_write_byte_identical_files()
    {
        // One writer for every run: the same training gives the same weights file, optimizer file and checkpoint, byte for
        // byte, whether one process ran it or a cluster of 3 workers and 2 shards (same bits, same metadata).
        string[] recipe = ["--schedule", "warmup:5+cosine", "--max-steps", "40"];
        var (c1, o1, e1) = Run(TrainArgs("one", recipe));
        Assert.True(c1 == 0, e1 + o1);
        var (c2, o2, e2) = Run(TrainArgs("cluster", [.. recipe, "--workers", "3", "--ps-shards", "2"]));
        Assert.True(c2 == 0, e2 + o2);
        Assert.Contains("cluster seed node", o2); // it really ran on the cluster runtime
        foreach (var file in new[] { "model.safetensors", "model.optimizer.safetensors", Path.Combine("checkpoint", "step-000000040", "model.safetensors"),
                     Path.Combine("checkpoint", "step-000000040", "model.optimizer.safetensors") })
            Assert.True(File.ReadAllBytes(Path.Combine(_dir, "one", file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(_dir, "cluster", file))),
                $"{file} differs between the one-process and the cluster run");
    }

    [Fact]
    public void Train_writes_model_and_metrics_and_eval_reads_them_back()
    {
        var (code, output, err) = Run(TrainArgs("run"));
        Assert.True(code == 0, err + output);
        var run = Path.Combine(_dir, "run");
        Assert.True(File.Exists(Path.Combine(run, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, "model.optimizer.safetensors")));
        Assert.Contains(Path.Combine(run, "model.safetensors"), output);
        foreach (var png in new[] { "loss.png", "accuracy.png", "step_time.png", "confusion.png" }) // drawn at the end of every run
            Assert.True(new FileInfo(Path.Combine(run, png)).Length > 1000, $"{png} missing or empty; output: {output}");
        Assert.Contains("Total parameters: 60", output);

        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var steps = lines.Where(l => l.GetProperty("kind").GetString() == "step").ToList();
        var epochs = lines.Where(l => l.GetProperty("kind").GetString() == "epoch").ToList();
        Assert.Equal(8 * 400 / 20, steps.Count);
        Assert.Equal(8, epochs.Count);
        Assert.All(steps, s => Assert.True(s.GetProperty("samples_per_s").GetDouble() > 0));
        double testAcc = epochs[^1].GetProperty("test_accuracy").GetDouble(), testLoss = epochs[^1].GetProperty("test_loss").GetDouble();
        Assert.True(testAcc >= 0.97, $"quadrant test accuracy {testAcc}");
        Assert.True(steps[^1].GetProperty("loss").GetDouble() < steps[0].GetProperty("loss").GetDouble() / 4);

        // eval rebuilds the model from the checkpoint's own spec and finds the dataset in its metadata.
        var (ecode, eout, eerr) = Run("eval", "--checkpoint", Path.Combine(run, "model.safetensors"), "--json");
        Assert.True(ecode == 0, eerr);
        var e = JsonDocument.Parse(eout.Trim()).RootElement;
        Assert.Equal(testAcc, e.GetProperty("accuracy").GetDouble());
        Assert.Equal(testLoss, e.GetProperty("loss").GetDouble(), 12);
        Assert.Equal(200, e.GetProperty("samples").GetInt32());
        Assert.Equal(160, e.GetProperty("step").GetInt64());

        var (tcode, tout, _) = Run("eval", "--checkpoint", Path.Combine(run, "model.safetensors"), "--split", "train");
        Assert.Equal(0, tcode);
        Assert.Contains("accuracy:", tout);
        Assert.Contains("400 samples", tout);
    }

    [Fact]
    public void One_process_run_resumed_from_a_checkpoint_writes_the_same_bytes()
    {
        var (code, output, err) = Run(TrainArgs("whole", "--max-steps", "30", "--checkpoint-every", "7"));
        Assert.True(code == 0, err + output);
        var whole = Path.Combine(_dir, "whole");
        var kept = DistTrain.Training.Checkpoints.CheckpointSeries.List(whole);
        Assert.Equal([28L, 21L], kept.Select(c => c.Step)); // every 7 steps and the epoch end at 20; the newest two stay

        // As if the process died after step 27: only the checkpoint of step 21 and no final model.
        var cut = Path.Combine(_dir, "cut");
        Directory.CreateDirectory(Path.Combine(cut, "checkpoint"));
        var from = kept[1].Dir;
        var to = Path.Combine(cut, "checkpoint", Path.GetFileName(from));
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        var (rcode, rout, rerr) = Run([.. TrainArgs("cut", "--max-steps", "30", "--checkpoint-every", "7"), "--resume", cut]);
        Assert.True(rcode == 0, rerr + rout);
        Assert.Contains("resuming from checkpoint", rout);
        Assert.Contains("step 21", rout);
        foreach (var name in new[] { "model.safetensors", "model.optimizer.safetensors" })
            Assert.Equal(Sha(Path.Combine(whole, name)), Sha(Path.Combine(cut, name)));
    }

    [Fact]
    public void Same_seed_writes_the_same_bytes_and_max_steps_stops_early()
    {
        var ra = Run(TrainArgs("a", "--threads", "1"));
        Assert.True(ra.Code == 0, ra.Err);
        var rb = Run(TrainArgs("b", "--threads", "2"));
        Assert.True(rb.Code == 0, rb.Err);
        Assert.Equal(Sha(Path.Combine(_dir, "a", "model.safetensors")), Sha(Path.Combine(_dir, "b", "model.safetensors")));
        var other = TrainArgs("c");
        other[Array.IndexOf(other, "--seed") + 1] = "5";
        Assert.Equal(0, Run(other).Code);
        Assert.NotEqual(Sha(Path.Combine(_dir, "a", "model.safetensors")), Sha(Path.Combine(_dir, "c", "model.safetensors")));

        var (code, output, _) = Run(TrainArgs("d", "--max-steps", "7"));
        Assert.Equal(0, code);
        Assert.Contains("done: 7 steps", output);
        Assert.Equal(7, File.ReadLines(Path.Combine(_dir, "d", "metrics.jsonl")).Count(l => l.Contains("\"kind\":\"step\"")));

        // --init starts from those weights: evaluating it before any step gives the same loss.
        var (icode, iout, ierr) = Run(TrainArgs("e", "--init", Path.Combine(_dir, "a", "model.safetensors"), "--max-steps", "1"));
        Assert.True(icode == 0, ierr);
        Assert.Contains("init: weights from", iout);
    }

    private static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    [Theory]
    [InlineData("unknown layer \"convv\"", "--model", "SPEC")]
    [InlineData("neither a preset", "--model", "vgg")]
    [InlineData("Unknown optimizer 'adamx'", "--optimizer", "adamx")]
    [InlineData("micro-batch 50", "--micro-batch", "50")]
    [InlineData("unknown scheme 'mnist'", "--dataset", "mnist")]
    [InlineData("Unknown learning-rate schedule", "--schedule", "exp")]
    [InlineData("--workers must be 0 or more", "--workers", "-1")]
    [InlineData("--mode 'semi' is unknown; use sync, async or local-sgd", "--mode", "semi")]
    [InlineData("--staleness applies only to --mode async", "--staleness", "2")]
    [InlineData("--local-steps applies only to --mode local-sgd", "--local-steps", "2")]
    [InlineData("\"rotate\" is not one of: none, crop:P", "--augment", "rotate")]
    [InlineData("needs image inputs (C,H,W)", "--augment", "crop:2,flip")]
    [InlineData("--compression 'int4' is not known: use none, bf16, fp16, int8 or topk", "--compression", "int4")]
    [InlineData("--compression bf16 works with --mode sync only", "--compression", "bf16 --mode async")]
    public void Bad_input_is_one_clear_line_and_exit_code_2(string fragment, string option, string value)
    {
        if (value == "SPEC")
        {
            value = Path.Combine(_dir, "bad.json");
            File.WriteAllText(value, """{"input":[2],"layers":[{"type":"dense","out":8},{"type":"convv"}]}""");
        }
        var args = TrainArgs("bad").ToList();
        int at = args.IndexOf(option);
        if (at >= 0) args[at + 1] = value; else args.AddRange([option, .. value.Split(' ')]);
        var (code, _, err) = Run([.. args]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
        Assert.Contains(fragment, err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Eval_of_a_missing_or_corrupt_checkpoint_is_a_clear_error()
    {
        var (code, _, err) = Run("eval", "--checkpoint", Path.Combine(_dir, "none.safetensors"));
        Assert.Equal(2, code);
        Assert.Contains("does not exist", err);
        var junk = Path.Combine(_dir, "junk.safetensors");
        File.WriteAllBytes(junk, [1, 2, 3]);
        (code, _, err) = Run("eval", "--checkpoint", junk, "--dataset", "synthetic:quadrants");
        Assert.Equal(2, code);
        Assert.Contains(junk, err);
    }

    [Fact]
    public void Bench_train_prints_json_with_throughput_and_peak_rss()
    {
        var (code, output, err) = Run("bench", "train", "--model", "quadrant,mlp", "--batch", "16", "--reps", "1", "--rep-seconds", "0.05", "--json");
        Assert.True(code == 0, err);
        var rows = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["quadrant", "mlp"], rows.Select(r => r.GetProperty("model").GetString()));
        Assert.All(rows, r =>
        {
            Assert.True(r.GetProperty("samples_per_s").GetDouble() > 0);
            Assert.True(r.GetProperty("peak_rss_bytes").GetInt64() > 10_000_000);
            Assert.Equal(16, r.GetProperty("batch").GetInt32());
        });
        Assert.Equal(235146, rows[1].GetProperty("params").GetInt32());
    }
}
