#!/usr/bin/env bash
# Slow-link benchmark (issue 14): one worker process on this host, a second one in a network namespace behind a link
# shaped to --rate (tbf on both ends of a veth pair; this kernel has no netem). Three rounds in one sitting, each a fresh
# cluster (coordinator holding the shards, TLS between the hosts): the fast worker alone, the fast worker with the slow
# one, and both workers on this host. Prints samples/s of each (steps after --warmup) and the mixed round as a share of
# the fast worker alone. Needs root and iproute2 (scripts/setup.sh).
#   scripts/slow-link-bench.sh                          # cnn, batch 256, micro-batch 32, 100mbit
#   scripts/slow-link-bench.sh --rate 50mbit --steps 60 -- --model mlp --micro-batch 16   # other train options after --
#   scripts/slow-link-bench.sh --backup-multiple 3      # disttrain.backup-multiple for every round (0 = no backup copies)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=100mbit; steps=50; warmup=10; backup=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --backup-multiple) backup=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "slow-link-bench.sh: unknown option $1 (expected --rate R, --steps N, --warmup N, --backup-multiple M, then -- and train options)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "slow-link-bench.sh makes a network namespace and needs root" >&2; exit 2; }
dll=${DISTTRAIN_DLL:-src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll}
[ -f "$dll" ] || dotnet build src/DistTrain.Cli -c Release -nologo -v q >&2
exec python3 - "$dll" "$rate" "$steps" "$warmup" "$backup" "$@" <<'EOF'
import json, os, signal, socket, subprocess, sys, tempfile, time
dll, rate, steps, warmup, backup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
extra = sys.argv[6:]
n = os.getpid() % 200 + 20
ns, hl, pl = f"dt-slow-{n}", f"dts-h{n}", f"dts-p{n}"
host, peer = f"10.78.{n}.1", f"10.78.{n}.2"
work = tempfile.mkdtemp(prefix="disttrain-slowlink-")

def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0: sys.exit(f"slow-link-bench: {' '.join(args)} failed: {r.stderr.strip()}")

def teardown():
    sh("ip", "netns", "del", ns, check=False); sh("ip", "link", "del", hl, check=False)

teardown()
procs = []
try:
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", hl, "type", "veth", "peer", "name", pl)
    sh("ip", "link", "set", pl, "netns", ns)
    sh("ip", "addr", "add", f"{host}/24", "dev", hl); sh("ip", "link", "set", hl, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{peer}/24", "dev", pl)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", pl, "up"); sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    # Upload and download of the namespace both shaped (tbf shapes what leaves a device).
    sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", pl, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms")
    sh("tc", "qdisc", "add", "dev", hl, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms")
    certs = os.path.join(work, "certs")
    sh("bash", "scripts/make-certs.sh", "--out", certs, host, peer)
    config = os.path.join(work, "two-hosts.hocon")
    with open(config, "w") as f:
        f.write('disttrain { join-timeout = 60s, data-plane.host = "" }\n')
        if backup: f.write(f"disttrain.backup-multiple = {backup}\n")
    tls = lambda h: ["--tls-cert", os.path.join(certs, h + ".p12"), "--tls-ca", os.path.join(certs, "ca.pem"), "--config", config]
    train = ["--model", "cnn", "--dataset", "fashion-mnist", "--batch-size", "256", "--micro-batch", "32", "--epochs", "1",
             "--max-steps", str(steps)] + extra

    def round_(name, slow, fast_workers):
        out = os.path.join(work, name)
        s = socket.socket(); s.bind((host, 0)); port = s.getsockname()[1]; s.close()
        seed = f"akka.tcp://disttrain@{host}:{port}"
        workers = fast_workers + (1 if slow else 0)
        log = open(os.path.join(work, name + ".log"), "w")
        coord = subprocess.Popen(["dotnet", dll, "train"] + train + ["--workers", "0", "--cluster-port", str(port), "--hostname", host,
                                 "--wait-workers", str(workers), "--out", out] + tls(host), stdout=log, stderr=subprocess.STDOUT)
        procs.append(coord)
        time.sleep(3)
        for i in range(fast_workers):
            procs.append(subprocess.Popen(["dotnet", dll, "node", "--roles", "worker", "--threads", "1", "--hostname", host, "--seed-nodes", seed] + tls(host),
                                          stdout=log, stderr=subprocess.STDOUT))
        if slow:
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "dotnet", dll, "node", "--roles", "worker", "--threads", "1", "--hostname", peer,
                                           "--seed-nodes", seed] + tls(peer), stdout=log, stderr=subprocess.STDOUT))
        try: coord.wait(timeout=900)
        except subprocess.TimeoutExpired: coord.kill(); sys.exit(f"slow-link-bench: round {name} did not finish in 15 minutes; see {work}/{name}.log")
        time.sleep(2)
        for p in procs:
            if p.poll() is None: p.kill()
        if coord.returncode != 0: sys.exit(f"slow-link-bench: round {name} failed (exit {coord.returncode}); see {work}/{name}.log")
        rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"kind":"step"' in l][warmup:]
        text = open(os.path.join(work, name + ".log")).read()
        # The coordinator's closing summary of backup copies (how many went out, how many finished first): the waste.
        summary = next((l.split("backup copies: ", 1)[1] for l in text.splitlines() if "backup copies: " in l), "no backup copies")
        m = __import__("re").match(r"(\d+) .*?\(([\d.]+) % of the run's work.*completed (\d+) of them first", summary)
        copies = f"{m.group(1)} backup copies ({m.group(2)} % of the work), {m.group(3)} first" if m else summary
        return sum(r["samples"] for r in rows) / sum(r["step_s"] for r in rows), copies

    alone, _ = round_("fast-alone", False, 1)
    mixed, mixed_copies = round_("fast-and-slow", True, 1)
    both, both_copies = round_("both-fast", False, 2)
    print(f"slow-link-bench: train {' '.join(train)}; slow link {rate} (tbf both ways); steps {warmup}..{steps - 1} timed"
          + (f"; disttrain.backup-multiple = {backup}" if backup else ""))
    print(f"  fast worker alone:              {alone:8,.0f} samples/s")
    print(f"  fast + slow worker:             {mixed:8,.0f} samples/s  = {mixed / alone:.1%} of the fast worker alone; {mixed_copies}")
    print(f"  two fast workers (this host):   {both:8,.0f} samples/s  = {both / alone:.1%} of the fast worker alone; {both_copies}")
    print(f"  output in {work}")
finally:
    for p in procs:
        if p.poll() is None: p.kill()
    teardown()
EOF
