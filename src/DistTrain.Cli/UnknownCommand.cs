// An unknown subcommand (`disttrain frobnicate`, `disttrain bench gemmm`) gets one short message that lists
// the commands that exist at that level (and the closest one), on stderr with exit code 2, instead of
// System.CommandLine's full help page.
using System.CommandLine;

namespace DistTrain.Cli;

public static class UnknownCommand
{
    /// <summary>The message for a command line whose first unmatched word sits where a subcommand was expected, else null.</summary>
    public static string? Check(ParseResult result)
    {
        if (result.Errors.Count == 0 || result.UnmatchedTokens.Count == 0) return null;
        var group = result.CommandResult.Command;
        if (group.Subcommands.Count == 0) return null; // a leaf command: its own error says which argument is wrong
        var word = result.UnmatchedTokens[0];
        if (word.StartsWith('-')) return null;
        var names = group.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).OrderBy(n => n, StringComparer.Ordinal).ToList();
        var path = CommandPath(result);
        var closest = names.Select(n => (Name: n, Distance: Distance(word, n))).OrderBy(p => p.Distance).First();
        var hint = closest.Distance <= Math.Max(1, word.Length / 3) ? $" Did you mean '{path} {closest.Name}'?" : "";
        return $"error: '{word}' is not a {path} command.{hint}\n" +
               $"Commands: {string.Join(", ", names)}. Run '{path} --help' for what each does.";
    }

    /// <summary>Parses and runs <paramref name="args"/> with the check above: what Main does.</summary>
    public static int Run(RootCommand root, string[] args)
    {
        var result = root.Parse(args);
        if (Check(result) is { } message)
        {
            Console.Error.WriteLine(message);
            return 2;
        }
        return result.Invoke();
    }

    static string CommandPath(ParseResult result)
    {
        var parts = new List<string>();
        for (var r = result.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            parts.Add(r.Parent is null ? "disttrain" : r.Command.Name);
        parts.Reverse();
        return string.Join(' ', parts);
    }

    /// <summary>Levenshtein distance, for the "did you mean" hint.</summary>
    static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
