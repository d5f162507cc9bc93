// The pure parts of trials on the cluster: TrialQueue (who runs what, a lost runner's trial back to the front, stale
// attempts not recognised, a trial that loses 3 runners given up) and TrialRequestCheck (what a runner accepts as train
// options, what a sweep accepts as a run folder's file).
using DistTrain.Cli.Sweep;
using Xunit;

namespace DistTrain.Cli.Tests.Sweep;

public sealed class TrialQueueTests
{
    static QueuedTrial<int> T(int k) => new(k, ["--model", "mlp"]);

    [Fact]
    public void Trials_go_to_the_longest_idle_runner_in_order_and_a_lost_runners_trial_goes_first_to_the_next()
    {
        var q = new TrialQueue<int>();
        for (int k = 0; k < 3; k++) q.Submit(T(k));
        Assert.Empty(q.Assign());
        q.Ready("b"); q.Ready("a"); q.Ready("b");
        var first = q.Assign();
        Assert.Equal([("b", 0, 1L), ("a", 1, 2L)], first.Select(x => (x.Runner, x.Trial.Key, x.Attempt)));
        Assert.Equal(1, q.Waiting);

        // a dies under trial 1: trial 1 waits before trial 2; a's late messages name an attempt it no longer holds.
        var (requeued, givenUp) = q.Lost("a");
        Assert.Equal(1, requeued!.Key);
        Assert.Null(givenUp);
        Assert.Null(q.Holding("a", 2));
        Assert.Null(q.Holding("a", 1)); // b's attempt is not a's
        Assert.NotNull(q.Holding("b", 1));
        q.Finished(q.Holding("b", 1)!);
        var next = q.Assign();
        Assert.Equal([("b", 1, 3L)], next.Select(x => (x.Runner, x.Trial.Key, x.Attempt)));
        Assert.Equal(1, next[0].Trial.Lost);

        // A busy runner's Ready does not make it idle; a bounced attempt goes back to the front and the runner waits.
        q.Ready("b");
        Assert.Equal(0, q.Idle);
        q.Bounced(next[0]);
        q.Ready("c");
        Assert.Equal([("c", 1)], q.Assign().Select(x => (x.Runner, x.Trial.Key)));
    }

    [Fact]
    public void A_trial_that_loses_three_runners_is_given_up_and_a_withdrawn_trial_never_runs()
    {
        var q = new TrialQueue<int>(maxLost: 3);
        q.Submit(T(7));
        q.Submit(T(8));
        Assert.True(q.Withdraw(8));
        Assert.False(q.Withdraw(8));
        for (int i = 0; i < 3; i++)
        {
            q.Ready($"r{i}");
            var a = Assert.Single(q.Assign());
            Assert.Equal(7, a.Trial.Key);
            var (requeued, givenUp) = q.Lost(a.Runner);
            if (i < 2) { Assert.NotNull(requeued); Assert.Null(givenUp); }
            else { Assert.Null(requeued); Assert.Equal(7, givenUp!.Key); Assert.Equal(3, givenUp.Lost); }
        }
        q.Ready("r9");
        Assert.Empty(q.Assign());
        Assert.Equal(0, q.Waiting);
    }

    static readonly TrainOptionCatalog Catalog = TrainOptionCatalog.FromTrainCommand();

    [Fact]
    public void A_runner_runs_exactly_the_options_a_sweep_sends_with_its_own_folder_and_one_thread()
    {
        var space = SearchSpace.Parse(["lr=log:1e-3..1e-1", "batch=32,64", "optimizer=adam,sgd", "schedule=constant,cosine"], Catalog);
        var settings = new TrialSettings("mlp", "idx:/data/fashion", 5, BudgetUnit.Steps, space);
        var run = new TrialRun(2, 1, new TrialPoint(["0.003", "64", "sgd", "cosine"]), 300, "/sweep/trial-002/rung-1");
        var options = TrainArguments.Options(run, settings);
        options.AddRange(["--checkpoint-every", "-1"]);
        var child = TrialRequestCheck.ChildArguments(options, Catalog, "/tmp/t/attempt-4");
        Assert.Equal(["train", "--model", "mlp", "--dataset", "idx:/data/fashion", "--lr", "0.003", "--batch-size", "64", "--optimizer", "sgd",
            "--schedule", "cosine", "--seed", "5", "--max-steps", "300", "--epochs", "1000000", "--checkpoint-every", "-1", "--threads", "1", "--out", "/tmp/t/attempt-4"], child);
        // The local child's command line is the same options around its own paths.
        var local = TrainArguments.For(run with { RunDir = "/x" }, settings);
        Assert.Equal(["train", .. TrainArguments.Options(run, settings), "--threads", "1", "--checkpoint-every", "-1", "--out", "/x"], local);
    }

    [Theory]
    [InlineData("--resume /tmp/x", "a trial continues only from the checkpoint the sweep sends")]
    [InlineData("--init /tmp/x.safetensors", "'--init' is not a train option")]
    [InlineData("--workers 4", "'--workers' is not a train option")]
    [InlineData("--cluster-port 4053", "'--cluster-port' is not a train option")]
    [InlineData("lr 0.1", "'lr' is not a train option")]
    [InlineData("--batch 64", "'--batch' is not a train option")]
    [InlineData("--lr 0.1 --lr 0.2", "--lr is given twice")]
    [InlineData("--lr", "not option/value pairs")]
    [InlineData("--batch-size 1e999x", "not a number")]
    [InlineData("--optimizer $(id)", "not one plain word")]
    [InlineData("--optimizer -x", "starts with '-'")]
    public void A_runner_refuses_what_is_not_a_trial_option_naming_it(string extra, string says)
    {
        var args = new List<string> { "--model", "mlp", "--max-steps", "10" };
        args.AddRange(extra.Split(' '));
        var e = Assert.Throws<ArgumentException>(() => TrialRequestCheck.ChildArguments(args, Catalog, "/tmp/r"));
        Assert.Contains(says, e.Message);
        Assert.Contains("no --model", Assert.Throws<ArgumentException>(() => TrialRequestCheck.ChildArguments(["--max-steps", "3"], Catalog, "/r")).Message);
        Assert.Contains("no budget", Assert.Throws<ArgumentException>(() => TrialRequestCheck.ChildArguments(["--model", "mlp"], Catalog, "/r")).Message);
    }

    [Fact]
    public void A_runner_resumes_only_from_the_checkpoint_the_sweep_sent_ahead()
    {
        string[] args = ["--model", "mlp", "--max-steps", "10", "--resume", TrialRequestCheck.Previous];
        Assert.Equal(["train", "--model", "mlp", "--max-steps", "10", "--resume", "/tmp/a-previous", "--threads", "1", "--out", "/tmp/a"],
            TrialRequestCheck.ChildArguments(args, Catalog, "/tmp/a", "/tmp/a-previous"));
        Assert.Contains("no checkpoint came before the request", Assert.Throws<ArgumentException>(() => TrialRequestCheck.ChildArguments(args, Catalog, "/tmp/a")).Message);
        Assert.Contains("continues only from the checkpoint the sweep sends", Assert.Throws<ArgumentException>(() =>
            TrialRequestCheck.ChildArguments(["--model", "mlp", "--max-steps", "10", "--resume", "/home/someone/run"], Catalog, "/tmp/a", "/tmp/a-previous")).Message);
    }

    [Fact]
    public void A_run_folder_arrives_whole_in_order_within_its_bounds_or_is_refused()
    {
        var root = Directory.CreateTempSubdirectory("disttrain-rfw-").FullName;
        try
        {
            static DistTrain.Cluster.Messages.SweepMessages.TrialFile F(string path, long offset, long length, int n) =>
                new(1, path, offset, length, Enumerable.Range(0, n).Select(i => (byte)(offset + i)).ToArray());
            using (var w = new RunFolderWriter(Path.Combine(root, "a"), maxBytes: 100, maxFiles: 2))
            {
                Assert.Null(w.Write(F("checkpoint/x.bin", 0, 10, 6)));
                Assert.False(w.Whole);
                Assert.Contains("out of order", w.Write(F("checkpoint/x.bin", 7, 10, 3)));
                Assert.Null(w.Write(F("checkpoint/x.bin", 6, 10, 4)));
                Assert.True(w.Whole);
                Assert.Equal(Enumerable.Range(0, 10).Select(i => (byte)i), File.ReadAllBytes(Path.Combine(root, "a", "checkpoint", "x.bin")));
                Assert.Contains("twice", w.Write(F("checkpoint/x.bin", 0, 10, 10)));
                Assert.Contains("from offset 3", w.Write(F("y.bin", 3, 10, 1)));
                Assert.Contains("the receiver writes it", w.Write(F("train.log", 0, 1, 1), "train.log"));
                Assert.Contains("more than 100 bytes", w.Write(F("big.bin", 0, 200, 95)));
                Assert.Null(w.Write(F("empty", 0, 0, 0)));
                Assert.Contains("more than 2 files", w.Write(F("third", 0, 1, 1)));
                Assert.Contains("'..' segment", w.Write(F("../escape", 0, 1, 1)));
                Assert.Equal((2, 10L), (w.Files, w.Bytes));
            }
            Assert.False(File.Exists(Path.Combine(root, "escape")));
            // Send, then Write on the other side, gives the same files.
            using var copy = new RunFolderWriter(Path.Combine(root, "b"), 1000);
            var (files, bytes) = RunFolderWriter.Send(Path.Combine(root, "a"), "p/", 1, m => Assert.Null(copy.Write(m)));
            Assert.Equal((2, 10L), (files, bytes));
            Assert.Equal(File.ReadAllBytes(Path.Combine(root, "a", "checkpoint", "x.bin")), File.ReadAllBytes(Path.Combine(root, "b", "p", "checkpoint", "x.bin")));
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Theory]
    [InlineData("metrics.jsonl", true)]
    [InlineData("checkpoint/step-000100/model.safetensors.sha256", true)]
    [InlineData("../evil", false)]
    [InlineData("a/../../evil", false)]
    [InlineData("/etc/passwd", false)]
    [InlineData("a//b", false)]
    [InlineData("./a", false)]
    [InlineData("a\\b", false)]
    [InlineData("C:x", false)]
    [InlineData("a b", false)]
    [InlineData("", false)]
    public void A_sweep_takes_only_relative_plain_paths_inside_the_run_folder(string path, bool ok) =>
        Assert.Equal(ok, TrialRequestCheck.FileProblem(path) is null);
}
