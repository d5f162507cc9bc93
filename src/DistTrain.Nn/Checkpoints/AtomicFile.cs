// Atomic file replacement with a SHA-256 manifest (DESIGN contract 4): write a temporary file in the
// same folder, flush it to disk, rename it over the target; then the same for `<file>.sha256`
// (sha256sum format, so `sha256sum -c` checks it). A reader verifies the checksum when the manifest exists.
using System.Security.Cryptography;

namespace DistTrain.Nn.Checkpoints;

public static class AtomicFile
{
    /// <summary>The manifest path beside <paramref name="path"/>.</summary>
    public static string ManifestPath(string path) => path + ".sha256";

    /// <summary>Replaces <paramref name="path"/> with what <paramref name="write"/> writes, or leaves the
    /// previous file untouched if <paramref name="write"/> throws (no temporary file is left either).</summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var tmp = WriteTemp(full, write);
        try { File.Move(tmp, full, overwrite: true); }
        catch { TryDelete(tmp); throw; }
        SyncDirectory(full);
    }

    /// <summary>Like <see cref="Write"/>, then writes the SHA-256 manifest. The old manifest is removed
    /// before the rename, so a crash between the two renames leaves a complete file without a manifest
    /// (loadable, unverified) rather than a good file with a stale checksum.</summary>
    public static string WriteWithManifest(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var tmp = WriteTemp(full, write);
        string hash;
        try
        {
            using (var s = File.OpenRead(tmp)) hash = Convert.ToHexStringLower(SHA256.HashData(s));
            var manifest = ManifestPath(full);
            File.Delete(manifest);
            File.Move(tmp, full, overwrite: true);
        }
        catch { TryDelete(tmp); throw; }
        SyncDirectory(full);
        var line = $"{hash}  {Path.GetFileName(full)}\n";
        Write(ManifestPath(full), s => s.Write(System.Text.Encoding.ASCII.GetBytes(line)));
        return hash;
    }

    /// <summary>Checks <paramref name="bytes"/> (the content of <paramref name="path"/>) against the
    /// manifest beside it, if there is one; returns whether a manifest was found.</summary>
    public static bool VerifyManifest(string path, ReadOnlySpan<byte> bytes)
    {
        var manifest = ManifestPath(path);
        if (!File.Exists(manifest)) return false;
        var text = File.ReadAllText(manifest).Trim();
        var hex = text.Split(' ', 2)[0];
        if (hex.Length != 64 || !hex.All(Uri.IsHexDigit))
            throw new CheckpointException(path, $"the manifest {manifest} does not start with a SHA-256 in hex; delete it or rewrite the checkpoint.");
        var actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (!string.Equals(actual, hex, StringComparison.OrdinalIgnoreCase))
            throw new CheckpointException(path,
                $"checksum mismatch: the manifest {Path.GetFileName(manifest)} says SHA-256 {hex.ToLowerInvariant()} but the file has {actual}; " +
                "the file is corrupt or was changed after it was written. Use an earlier checkpoint.");
        return true;
    }

    private static string WriteTemp(string full, Action<Stream> write)
    {
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            write(fs);
            fs.Flush(flushToDisk: true);
        }
        catch { TryDelete(tmp); throw; }
        return tmp;
    }

    // The rename itself is durable only once the folder's entry is on disk: fsync the directory (Linux;
    // .NET has no API for it, FileStream refuses directories). Best effort: the data file is already synced.
    private static void SyncDirectory(string file)
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            int fd = Native.open(Path.GetDirectoryName(file)!, 0 /* O_RDONLY */);
            if (fd < 0) return;
            Native.fsync(fd);
            Native.close(fd);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    private static class Native
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] public static extern int open(string path, int flags);
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] public static extern int fsync(int fd);
        [System.Runtime.InteropServices.DllImport("libc")] public static extern int close(int fd);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
