// `disttrain bench transport` as a real process (it starts its receiver children itself): a short run moves
// 1 MiB tensors both ways over the authenticated data plane, with and without frame tags, through the socket
// buffer size it was given, and reports rows whose transfers allocate nothing on the sender; a too-small buffer
// or an unknown --auth is refused before any socket opens. With iperf3 installed, each one-way lane is set against
// short iperf3 runs just before and after it (its fraction of the ceiling, within seconds).
using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace DistTrain.Cli.Tests;

[Collection("Serial")]
public sealed class BenchTransportCommandTests
{
    private static (int Code, string Out, string Err) Run(string args)
    {
        var psi = new ProcessStartInfo("dotnet", $"\"{MultiProcessClusterTests.Dll()}\" {args}") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"bench transport {args} did not finish within 120 s");
        }
        return (p.ExitCode, output.Result, err.Result);
    }

    [Theory]
    [InlineData(262144)]
    [InlineData(0)] // kernel autotuning
    public void Moves_tensors_one_way_and_round_trip_and_the_sender_allocates_nothing(int socketBufferBytes)
    {
        var (code, output, err) = Run($"bench transport --sizes 1 --megabytes 8 --no-iperf --json --socket-buffer-bytes {socketBufferBytes}");
        Assert.True(code == 0, err);
        var rows = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        // --auth both (the default): per mode, the untagged lane, then the tagged one as training runs it.
        Assert.Equal(["one-way", "one-way", "round-trip", "round-trip"], rows.Select(r => r.GetProperty("mode").GetString()!));
        Assert.Equal(["dataplane, no tag", "dataplane", "dataplane, no tag", "dataplane"], rows.Select(r => r.GetProperty("path").GetString()!));
        foreach (var r in rows)
        {
            Assert.Equal(1, r.GetProperty("MiB").GetInt32());
            Assert.True(r.GetProperty("transfers").GetInt32() >= 4);
            Assert.True(r.GetProperty("MB/s").GetDouble() > 0);
            Assert.True(r.GetProperty("cpu_s/GB_send").GetDouble() > 0);
            Assert.True(r.GetProperty("cpu_s/GB_recv").GetDouble() > 0);
            Assert.Equal(0, r.GetProperty("alloc_B/transfer_send").GetDouble());
            // A stray runtime object over the run is tolerated; an object per transfer (≥ 24 B) is not.
            Assert.InRange(r.GetProperty("alloc_B/transfer_recv").GetDouble(), 0, 23);
        }
    }

    [SkippableFact]
    public void Each_one_way_lane_is_bracketed_by_iperf3_runs_and_reported_as_their_fraction()
    {
        Skip.If(!File.Exists("/usr/bin/iperf3") && !File.Exists("/usr/local/bin/iperf3"), "iperf3 is not installed (scripts/setup.sh installs it)");
        var (code, output, err) = Run("bench transport --sizes 1 --megabytes 8 --json");
        Assert.True(code == 0, err);
        var rows = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var oneWay = rows.Where(r => r.GetProperty("mode").GetString() == "one-way" && r.GetProperty("path").GetString()!.StartsWith("dataplane")).ToList();
        Assert.Equal(2, oneWay.Count);
        foreach (var r in oneWay)
        {
            double around = r.GetProperty("iperf3_1M_MB/s_around").GetDouble(), fraction = r.GetProperty("of_iperf3_1M").GetDouble();
            Assert.True(around > 0, $"iperf3 around the lane: {around} MB/s");
            // The fraction is the lane's MB/s over the (harmonic) mean of the iperf3 runs just before and after it.
            Assert.Equal(r.GetProperty("MB/s").GetDouble() / around, fraction, 1e-9);
        }
        // Round trips have no one-way ceiling; the 3 s iperf3 rows still close the run.
        Assert.All(rows.Where(r => r.GetProperty("mode").GetString() == "round-trip"), r => Assert.False(r.TryGetProperty("of_iperf3_1M", out _)));
        Assert.Contains(rows, r => r.GetProperty("path").GetString() == "iperf3 -l 1M");
    }

    [Fact]
    public void A_socket_buffer_below_64_KiB_is_refused()
    {
        var (code, _, err) = Run("bench transport --sizes 1 --no-iperf --socket-buffer-bytes 100");
        Assert.Equal(2, code);
        Assert.Contains("--socket-buffer-bytes", err);
    }

    [Fact]
    public void An_unknown_auth_mode_is_refused_naming_the_choices()
    {
        var (code, _, err) = Run("bench transport --sizes 1 --no-iperf --auth maybe");
        Assert.Equal(2, code);
        Assert.Contains("--auth 'maybe' must be on, off or both", err);
    }
}
