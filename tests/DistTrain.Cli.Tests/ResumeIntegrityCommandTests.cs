// `disttrain train --resume` refuses a checkpoint whose SHA-256 manifest is missing with exit code 2 and a message
// naming the file and --allow-unverified; with the flag it resumes and writes the bytes of the uninterrupted run.
using System.Security.Cryptography;
using DistTrain.Cli;
using DistTrain.Training.Checkpoints;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class ResumeIntegrityCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("disttrain-cli-resume-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    private string[] TrainArgs(string outDir, params string[] extra) =>
    [
        "train", "--model", "quadrant", "--dataset", "synthetic:quadrants:n=200:test-n=100:margin=0.05:seed=2",
        "--epochs", "4", "--batch-size", "20", "--optimizer", "adam", "--lr", "0.05", "--seed", "4", "--max-steps", "14",
        "--checkpoint-every", "6", "--out", Path.Combine(_dir, outDir), .. extra,
    ];

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void Resume_from_a_checkpoint_without_its_manifest_needs_allow_unverified()
    {
        var (code, output, err) = Run(TrainArgs("whole"));
        Assert.True(code == 0, err + output);
        var whole = Path.Combine(_dir, "whole");
        var from = CheckpointSeries.List(whole).Single(c => c.Step == 12).Dir;

        // The step-12 checkpoint copied without the weights' manifest, as a careless copy would.
        var cut = Path.Combine(_dir, "cut");
        var to = Path.Combine(CheckpointSeries.RootOf(cut), Path.GetFileName(from));
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from).Where(f => !f.EndsWith("model.safetensors.sha256", StringComparison.Ordinal)))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)));

        var (rcode, rout, rerr) = Run([.. TrainArgs("cut"), "--resume", cut]);
        Assert.Equal(2, rcode);
        Assert.Contains(Path.Combine(to, "model.safetensors"), rout); // the skipped checkpoint, named with its reason
        Assert.Contains("no SHA-256 manifest", rout);
        Assert.Contains("--allow-unverified", rout);
        Assert.Contains("None of the 1 checkpoint(s)", rerr);
        Assert.False(File.Exists(Path.Combine(cut, "model.safetensors")));

        var (acode, aout, aerr) = Run([.. TrainArgs("cut"), "--resume", cut, "--allow-unverified"]);
        Assert.True(acode == 0, aerr + aout);
        Assert.Contains("unverified", aout);
        Assert.Contains("step 12", aout);
        foreach (var name in new[] { "model.safetensors", "model.optimizer.safetensors" })
            Assert.Equal(Sha(Path.Combine(whole, name)), Sha(Path.Combine(cut, name)));
    }
}
