// Emulated hosts for `disttrain scale --network namespaces`: one network namespace per process (the coordinator, each
// ps and each worker), each joined by a veth pair to one bridge, with tbf on both ends of the pair so a host's upload
// and download are each shaped to --bandwidth (a full-duplex NIC). Needs root and iproute2 (scripts/setup.sh); the
// kernel here has no netem: latency comes from LatencyRelays on the bridge's extra addresses (RelayAddress). Everything
// made is deleted on Dispose, also after a failure.
using System.Diagnostics;
using System.Globalization;

namespace DistTrain.Cli.Scale;

public sealed class HostNetwork : IDisposable
{
    private readonly string _tag;
    private readonly List<string> _namespaces = [];
    private bool _bridge;

    /// <summary>tbf's rate argument, e.g. 1gbit; null = unshaped veth links.</summary>
    public string? Rate { get; }

    private HostNetwork(string tag, string? rate) => (_tag, Rate) = (tag, rate);

    private string Bridge => $"dt{_tag}br";

    /// <summary>The bridge and no host yet. Throws with the fix when not root or `ip` is missing.</summary>
    public static HostNetwork Create(string? rate)
    {
        if (Environment.UserName != "root")
            throw new InvalidOperationException("--network namespaces makes network namespaces and needs root; run as root, or use --network loopback.");
        var net = new HostNetwork((Environment.ProcessId % 1000).ToString("D3", CultureInfo.InvariantCulture), rate);
        try
        {
            net.Run("ip", $"link del {net.Bridge}", check: false); // a leftover of a killed run with the same tag
            net.Run("ip", $"link add {net.Bridge} type bridge");
            net._bridge = true;
            net.Run("ip", $"link set {net.Bridge} up");
        }
        catch { net.Dispose(); throw; }
        return net;
    }

    /// <summary>Host <paramref name="index"/> (0..32,000): its namespace name and address, made on first use.</summary>
    public (string Namespace, string Address) Host(int index)
    {
        string ns = $"dt{_tag}-h{index}", outer = $"dt{_tag}h{index}", inner = $"dt{_tag}p{index}";
        string address = $"10.79.{index / 250}.{index % 250 + 2}";
        if (_namespaces.Contains(ns)) return (ns, address);
        Run("ip", $"netns del {ns}", check: false);
        Run("ip", $"netns add {ns}");
        _namespaces.Add(ns);
        Run("ip", $"link add {outer} type veth peer name {inner}");
        Run("ip", $"link set {inner} netns {ns}");
        Run("ip", $"link set {outer} master {Bridge}");
        Run("ip", $"link set {outer} up");
        Run("ip", $"netns exec {ns} ip addr add {address}/16 dev {inner}");
        Run("ip", $"netns exec {ns} ip link set {inner} up");
        Run("ip", $"netns exec {ns} ip link set lo up");
        if (Rate is { } rate)
        {
            // Upload: the namespace's end; download: the bridge's end (tbf shapes what leaves a device).
            Run("ip", $"netns exec {ns} tc qdisc add dev {inner} root tbf rate {rate} burst 256kb latency 20ms");
            Run("tc", $"qdisc add dev {outer} root tbf rate {rate} burst 256kb latency 20ms");
        }
        return (ns, address);
    }

    private readonly HashSet<int> _relayAddresses = [];

    /// <summary>The address where host <paramref name="index"/>'s latency relays listen: a second address of the bridge, in
    /// this (the root) namespace, so traffic to the host goes sender → its shaped link → relay → the host's shaped link.
    /// Same /16 as the hosts (on-link for them); added on first use, removed with the bridge.</summary>
    public string RelayAddress(int index)
    {
        string address = $"10.79.{128 + index / 250}.{index % 250 + 2}";
        if (_relayAddresses.Add(index)) Run("ip", $"addr add {address}/16 dev {Bridge}");
        return address;
    }

    private void Run(string file, string args, bool check = true)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"`{file}` is missing (iproute2); run scripts/setup.sh, or use --network loopback.", e); }
        using (p)
        {
            string err = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (check && p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed ({p.ExitCode}): {err.Trim()}");
        }
    }

    public void Dispose()
    {
        // Deleting a namespace deletes its end of the veth pair, and with it the bridge's end.
        foreach (var ns in _namespaces) Run("ip", $"netns del {ns}", check: false);
        _namespaces.Clear();
        if (_bridge) Run("ip", $"link del {Bridge}", check: false);
        _bridge = false;
    }
}
