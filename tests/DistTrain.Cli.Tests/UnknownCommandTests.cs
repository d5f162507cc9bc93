// `disttrain frobnicate` (and an unknown `bench` subcommand) names the commands that exist and exits non-zero;
// a known command still runs.
using DistTrain.Cli;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Console")]
public sealed class UnknownCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o); Console.SetError(e);
        try { return (Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    [Fact]
    public void Unknown_top_level_command_lists_every_command_and_fails()
    {
        var (code, output, err) = Run("frobnicate");
        Assert.NotEqual(0, code);
        Assert.Contains("'frobnicate' is not a disttrain command", err);
        // Every real top-level command is named, read from the command tree rather than hard-coded.
        foreach (var c in Program.BuildRoot().Subcommands) Assert.Contains(c.Name, err);
        Assert.DoesNotContain("Did you mean", err);
        Assert.Equal("", output);
    }

    [Fact]
    public void Near_miss_suggests_the_closest_command()
    {
        var (code, _, err) = Run("evl", "--checkpoint", "x");
        Assert.Equal(2, code);
        Assert.Contains("Did you mean 'disttrain eval'?", err);
    }

    [Fact]
    public void Unknown_bench_subcommand_lists_the_bench_commands()
    {
        var (code, _, err) = Run("bench", "gemmm");
        Assert.Equal(2, code);
        Assert.Contains("'gemmm' is not a disttrain bench command", err);
        Assert.Contains("Did you mean 'disttrain bench gemm'?", err);
        var bench = Program.BuildRoot().Subcommands.Single(c => c.Name == "bench");
        foreach (var c in bench.Subcommands) Assert.Contains(c.Name, err);
    }

    [Fact]
    public void Known_command_with_a_bad_option_keeps_its_own_error()
    {
        Assert.Null(UnknownCommand.Check(Program.BuildRoot().Parse(["eval", "--bogus"])));
        Assert.Null(UnknownCommand.Check(Program.BuildRoot().Parse(["--help"])));
    }
}
