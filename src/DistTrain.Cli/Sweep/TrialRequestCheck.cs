// What a trial runner accepts from a sweep: `disttrain train` options only (the model, the dataset, the budget, the seed,
// the checkpoint interval and the options a sweep may search, TrainOptionCatalog), each once, with a value that is one
// plain word (a number for a numeric option). Paths it writes to (--out, --resume, --init), the thread count and the
// cluster wiring are the runner's own. And what a sweep accepts from a runner as a file of a trial's run folder.
// Pure: tested without processes.
using System.Globalization;

namespace DistTrain.Cli.Sweep;

public static class TrialRequestCheck
{
    /// <summary>Options every trial carries besides the swept ones (TrainArguments.Options, plus --checkpoint-every).</summary>
    static readonly Dictionary<string, bool> Fixed = new(StringComparer.Ordinal)
    {
        ["--model"] = false, ["--dataset"] = false, ["--seed"] = true, ["--max-steps"] = true, ["--epochs"] = true, ["--checkpoint-every"] = true,
    };

    public const int MaxArguments = 256, MaxValueChars = 1024;

    /// <summary>The value of --resume in a request: the previous rung's checkpoint the sweep sent ahead of it (the runner's
    /// own folder for it; no other --resume is accepted).</summary>
    public const string Previous = "@previous-rung";

    /// <summary>
    /// The child's command line (after the disttrain executable) for <paramref name="arguments"/>, run into
    /// <paramref name="runDir"/> with one compute thread; throws an ArgumentException naming what is refused.
    /// </summary>
    /// <param name="previousDir">Where the checkpoint sent ahead of the request was written (null: none was).</param>
    public static List<string> ChildArguments(IReadOnlyList<string> arguments, TrainOptionCatalog catalog, string runDir, string? previousDir = null)
    {
        if (arguments.Count > MaxArguments) throw new ArgumentException($"{arguments.Count} arguments (at most {MaxArguments})");
        if (arguments.Count % 2 != 0) throw new ArgumentException("the arguments are not option/value pairs");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < arguments.Count; i += 2)
        {
            string flag = arguments[i], value = arguments[i + 1];
            if (flag is null || value is null) throw new ArgumentException("an argument is null");
            bool numeric;
            if (flag == "--resume")
            {
                if (value != Previous) throw new ArgumentException($"--resume '{Short(value ?? "")}': a trial continues only from the checkpoint the sweep sends ({Previous})");
                if (previousDir is null) throw new ArgumentException($"--resume {Previous}, but no checkpoint came before the request");
                if (!seen.Add(flag)) throw new ArgumentException($"{flag} is given twice");
                continue;
            }
            if (Fixed.TryGetValue(flag, out numeric)) { }
            else
            {
                TrainOption o;
                try { o = catalog.Find(flag.StartsWith("--", StringComparison.Ordinal) ? flag[2..] : "\u0000" + flag); }
                catch (ArgumentException) { throw new ArgumentException($"'{Short(flag)}' is not a train option a trial may set (a trial sets the model, dataset, seed, budget and the options a sweep searches)"); }
                if (o.Flag != flag) throw new ArgumentException($"'{Short(flag)}' is not a train option a trial may set");
                numeric = o.Numeric;
            }
            if (!seen.Add(flag)) throw new ArgumentException($"{flag} is given twice");
            if (!PlainWord(value)) throw new ArgumentException($"the value of {flag} ('{Short(value)}') is not one plain word");
            if (numeric && !double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                throw new ArgumentException($"the value of {flag} ('{Short(value)}') is not a number");
            if (!numeric && value.StartsWith('-')) throw new ArgumentException($"the value of {flag} ('{Short(value)}') starts with '-'");
        }
        if (!seen.Contains("--model")) throw new ArgumentException("no --model");
        if (!seen.Contains("--max-steps") && !seen.Contains("--epochs")) throw new ArgumentException("no budget (--max-steps or --epochs)");
        var child = new List<string>(arguments.Count + 5) { "train" };
        for (int i = 0; i < arguments.Count; i += 2)
            child.AddRange([arguments[i], arguments[i] == "--resume" ? previousDir! : arguments[i + 1]]);
        child.AddRange(["--threads", "1", "--out", runDir]);
        return child;
    }

    static bool PlainWord(string v) =>
        v.Length is > 0 and <= MaxValueChars && v.All(c => char.IsLetterOrDigit(c) || "-_./:=,+@%".Contains(c));

    static string Short(string s) => s.Length <= 64 ? s : s[..61] + "...";

    public const int MaxPathChars = 512;

    /// <summary>
    /// Null when <paramref name="path"/> (as a runner sent it) names a file inside a run folder: relative, '/'-separated,
    /// no empty, '.' or '..' segment, plain characters. Else what is wrong with it.
    /// </summary>
    public static string? FileProblem(string path)
    {
        if (string.IsNullOrEmpty(path) || path.Length > MaxPathChars) return $"a file path of {path?.Length ?? 0} characters";
        if (path.StartsWith('/') || path.Contains('\\') || path.Contains(':')) return $"'{Short(path)}' is not a relative '/'-separated path";
        foreach (var seg in path.Split('/'))
        {
            if (seg is "" or "." or "..") return $"'{Short(path)}' has an empty, '.' or '..' segment";
            if (!seg.All(c => char.IsLetterOrDigit(c) || "-_.+=,@%".Contains(c))) return $"'{Short(path)}' has a character a run folder's files do not use";
        }
        return null;
    }
}
