// The `disttrain` command: train, eval, node, bench. Each subcommand is a class implementing
// ICommandFactory in its own file under Commands/, found by reflection so files never collide.
using System.CommandLine;
using System.Reflection;

namespace DistTrain.Cli;

/// <summary>One subcommand. Parent is null for a top-level command, or "bench" for `disttrain bench X`.</summary>
public interface ICommandFactory
{
    string? Parent { get; }
    Command Create();
}

public static class Program
{
    public static int Main(string[] args) => UnknownCommand.Run(BuildRoot(), args);

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("DistTrain: distributed, deterministic neural-network training on Akka.NET.");
        var bench = new Command("bench", "Measure kernels and training throughput; prints a table, or JSON lines with --json.");
        root.Subcommands.Add(bench);
        var factories = typeof(Program).Assembly.GetTypes()
            .Where(t => typeof(ICommandFactory).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (ICommandFactory)Activator.CreateInstance(t)!)
            .OrderBy(f => f.GetType().Name, StringComparer.Ordinal);
        foreach (var f in factories)
            (f.Parent == "bench" ? bench : root).Subcommands.Add(f.Create());
        return root;
    }
}
