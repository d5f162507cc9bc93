// Writes a run folder that arrives as TrialFile chunks (a trial's results at the sweep; a previous rung's checkpoint at a
// runner): only relative plain paths inside the folder, each file from offset 0 in order to its stated length, each once,
// at most a given number of bytes and files. The first problem stops it; what was written stays for the caller to delete.
using static DistTrain.Cluster.Messages.SweepMessages;

namespace DistTrain.Cli.Sweep;

public sealed class RunFolderWriter(string root, long maxBytes, int maxFiles = RunFolderWriter.MaxFiles) : IDisposable
{
    public const int MaxFiles = 10_000;

    readonly Dictionary<string, (FileStream Stream, long Length)> _open = new(StringComparer.Ordinal);
    readonly HashSet<string> _done = new(StringComparer.Ordinal);

    public string Root { get; } = root;
    public long Bytes { get; private set; }
    public int Files => _done.Count;
    /// <summary>Every file begun has all its bytes.</summary>
    public bool Whole => _open.Count == 0;

    /// <summary>Writes the chunk; null when it fit, else what was wrong with it (the writer then takes nothing more).</summary>
    public string? Write(TrialFile m, params string[] reservedNames)
    {
        string? problem = TrialRequestCheck.FileProblem(m.Path);
        if (problem is null && reservedNames.Contains(m.Path)) problem = $"a file named {m.Path} (the receiver writes it)";
        if (problem is null && _done.Contains(m.Path)) problem = $"{m.Path} twice";
        if (problem is null && _open.Count + _done.Count >= maxFiles && !_open.ContainsKey(m.Path)) problem = $"more than {maxFiles} files";
        if (problem is null && Bytes + m.Data.Length > maxBytes) problem = $"more than {maxBytes} bytes";
        if (problem is null && !_open.ContainsKey(m.Path) && m.Offset != 0) problem = $"{m.Path} from offset {m.Offset}, not 0";
        if (problem is not null) return problem;
        if (!_open.TryGetValue(m.Path, out var f))
        {
            var path = Path.Combine(Root, m.Path.Replace('/', Path.DirectorySeparatorChar));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            f = (new FileStream(path, FileMode.Create, FileAccess.Write), m.Length);
            _open[m.Path] = f;
        }
        if (f.Length != m.Length || f.Stream.Position != m.Offset || m.Offset + m.Data.Length > m.Length)
            return $"{m.Path} out of order (offset {m.Offset}, {m.Data.Length} bytes of {m.Length})";
        f.Stream.Write(m.Data);
        Bytes += m.Data.Length;
        if (f.Stream.Position == f.Length)
        {
            f.Stream.Dispose();
            _open.Remove(m.Path);
            _done.Add(m.Path);
        }
        return null;
    }

    /// <summary>Sends the files under <paramref name="folder"/> (paths relative to it, '/'-separated, prefixed with
    /// <paramref name="prefix"/>) as chunks through <paramref name="send"/>; returns the number of files and bytes.</summary>
    public static (int Files, long Bytes) Send(string folder, string prefix, long attempt, Action<TrialFile> send)
    {
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => (Full: f, Rel: prefix + Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/')))
            .OrderBy(f => f.Rel, StringComparer.Ordinal).ToList();
        var buffer = new byte[ChunkBytes];
        long bytes = 0;
        foreach (var (full, rel) in files)
        {
            using var s = File.OpenRead(full);
            long length = s.Length, offset = 0;
            do
            {
                int n = s.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
                send(new TrialFile(attempt, rel, offset, length, buffer.AsSpan(0, n).ToArray()));
                offset += n;
            } while (offset < length);
            bytes += length;
        }
        return (files.Count, bytes);
    }

    /// <summary>Bytes of the files under <paramref name="folder"/>.</summary>
    public static long Size(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

    public void Dispose()
    {
        foreach (var f in _open.Values) f.Stream.Dispose();
        _open.Clear();
    }
}
