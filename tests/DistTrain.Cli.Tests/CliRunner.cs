// The CLI in-process, as a user runs it: the command line through Program's root command, with what it prints
// captured. Tests that use it share the "Console" collection (they swap Console.Out).
namespace DistTrain.Cli.Tests;

internal static class CliRunner
{
    /// <summary>Runs `disttrain ARGS`; returns the exit code and what went to standard output and standard error.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o); Console.SetError(e);
        try { return (Program.BuildRoot().Parse(args).Invoke(), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }
}
