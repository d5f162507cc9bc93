// `disttrain bench transport --mac-speed`: the keyed MACs .NET offers, one core, over tensor-sized buffers already in
// memory — the measurement behind the data plane's frame tag (Poly1305, FrameMac) — beside the unkeyed XxHash3 checksum.
using System.Diagnostics;
using System.IO.Hashing;
using System.Security.Cryptography;

namespace DistTrain.Cli.Bench;

internal static class MacSpeed
{
    public static int Run(BenchOutput output)
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var tag = new byte[32];
        var nonce = new byte[12];
        using var gcm = new AesGcm(key, 16);
        using var poly = new ChaCha20Poly1305(key);
        output.Note($"keyed MACs, one thread, GB/s = 10^9 bytes per second; AES-NI {System.Runtime.Intrinsics.X86.Aes.IsSupported}, " +
                    $"PCLMULQDQ {System.Runtime.Intrinsics.X86.Pclmulqdq.IsSupported}");
        foreach (var mib in new[] { 1, 16 })
        {
            var data = RandomNumberGenerator.GetBytes(mib << 20);
            Measure(output, "xxhash3 (checksum, unkeyed)", mib, data, d => XxHash3.HashToUInt64(d));
            Measure(output, "hmac-sha256", mib, data, d => HMACSHA256.HashData(key, d, tag));
            Measure(output, "aes-gcm as gmac", mib, data, d => gcm.Encrypt(nonce, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, tag.AsSpan(0, 16), d));
            Measure(output, "chacha20-poly1305 as poly1305 (the frame tag)", mib, data, d => poly.Encrypt(nonce, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, tag.AsSpan(0, 16), d));
        }
        output.Flush();
        return 0;
    }

    private delegate void Pass(ReadOnlySpan<byte> data);

    private static void Measure(BenchOutput output, string name, int mib, byte[] data, Pass pass)
    {
        for (int i = 0; i < 3; i++) pass(data); // JIT and first-use state
        var rates = new List<double>();
        for (int rep = 0; rep < 5; rep++)
        {
            int n = 0;
            var sw = Stopwatch.StartNew();
            do { pass(data); n++; } while (sw.Elapsed.TotalSeconds < 0.2);
            rates.Add((double)data.Length * n / sw.Elapsed.TotalSeconds / 1e9);
        }
        rates.Sort();
        output.Add(new Dictionary<string, object?> { ["mac"] = name, ["MiB"] = mib, ["GB/s median"] = rates[2], ["GB/s best"] = rates[^1] });
    }
}
