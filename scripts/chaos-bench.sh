#!/usr/bin/env bash
# Chaos benchmark (issue 14): the chaos test's cluster on 127.0.0.1 — a coordinator and a standby (`train --standby`), 2
# parameter-server processes and a spare, 3 workers — trains twice in one sitting: once undisturbed, once with a seeded
# random process killed (SIGKILL) every --every seconds and started again, as a supervisor would (a worker comes back as a
# new worker, a ps process as a spare, the coordinator as the standby of the one that took over). Prints each round's
# samples/s over steps --warmup.. (the first step line after the warm-up to the last), the chaos round's share of the
# undisturbed one, and whether the two models are bit-identical (sync: they must be).
#   scripts/chaos-bench.sh [--steps 600] [--faults 8] [--every 4] [--warmup 20] [-- other train options]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=600; faults=8; every=4; warmup=20
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "chaos-bench.sh: unknown option $1 (expected --steps N, --faults N, --every SECONDS, --warmup N, then -- and train options)" >&2; exit 2 ;;
  esac
done
dll=${DISTTRAIN_DLL:-src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll}
[ -f "$dll" ] || dotnet build src/DistTrain.Cli -c Release -nologo -v q >&2
exec python3 - "$dll" "$steps" "$faults" "$every" "$warmup" "$@" <<'EOF'
import hashlib, json, os, random, signal, socket, subprocess, sys, tempfile, time
dll, steps, faults, every, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
extra = sys.argv[6:]
batch = 64

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def step_lines(metrics):
    try:
        with open(metrics) as f: return [json.loads(l) for l in f if '"kind":"step"' in l]
    except (FileNotFoundError, json.JSONDecodeError): return []

def run(chaos):
    out = tempfile.mkdtemp(prefix="disttrain-chaos-bench-")
    metrics = os.path.join(out, "metrics.jsonl")
    log = open(os.path.join(out, "cluster.log"), "w")
    train = ["--model", "mlp", "--dataset", "fashion-mnist", "--batch-size", str(batch), "--micro-batch", "8", "--epochs", str(-(-steps * batch // 60000)),
             "--max-steps", str(steps), "--ps-shards", "2", "--ps-local", "0", "--out", out] + extra
    procs, ports = [], []
    def start(args):
        p = subprocess.Popen(["dotnet", dll] + args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p); return p
    def seeds(): return ",".join(f"akka.tcp://disttrain@127.0.0.1:{p}" for p in ports)
    def wait_port(port, p, what):
        deadline = time.time() + 90
        while time.time() < deadline and p.poll() is None:
            try: socket.create_connection(("127.0.0.1", port), 0.2).close(); return
            except OSError: time.sleep(0.2)
        sys.exit(f"chaos-bench: the {what} did not come up (log: {out}/cluster.log)")
    def coordinator(lead):
        port = free_port(); ports.append(port)
        args = ["train"] + train + (["--workers", "0", "--wait-workers", "3", "--cluster-port", str(port)] if lead is None
                                    else ["--cluster-port", str(port), "--standby", f"akka.tcp://disttrain@127.0.0.1:{lead}"])
        p = start(args); wait_port(port, p, "coordinator"); time.sleep(3 if lead is not None else 0)  # a standby joins, then is told the job
        return p, port
    def node(role): return start(["node", "--roles", role, "--seed-nodes", seeds()])
    coords = [coordinator(None)]
    coords.append(coordinator(coords[0][1]))
    ps = [node("ps") for _ in range(3)]
    workers = [node("worker") for _ in range(3)]
    rng = random.Random(14)
    kinds = (["worker", "ps", "coordinator"] * faults)[:faults]; rng.shuffle(kinds)
    done, deadline = 0, time.time() + 1200
    try:
        while len(step_lines(metrics)) < warmup and time.time() < deadline: time.sleep(0.05)
        t_warm = time.time(); t_end = None
        next_fault = time.time() + every
        while time.time() < deadline:
            if t_end is None and len(step_lines(metrics)) >= steps: t_end = time.time()
            if all(p.poll() is not None for p, _ in coords):
                if t_end is None: t_end = time.time()
                break
            if chaos and done < len(kinds) and time.time() >= next_fault and len(step_lines(metrics)) < steps - 20:
                kind = kinds[done]
                if kind == "worker":
                    i = rng.randrange(len(workers)); workers[i].kill(); workers[i] = node("worker")
                elif kind == "ps":
                    i = rng.randrange(len(ps)); ps[i].kill(); ps[i] = node("ps")
                else:
                    lead = next(i for i, (p, _) in enumerate(coords) if p.poll() is None)
                    coords[lead][0].kill()
                    nxt = next(i for i in range(lead + 1, len(coords)) if coords[i][0].poll() is None)
                    coords.append(coordinator(coords[nxt][1]))
                done += 1
                print(f"  fault {done}: {kind} killed at step line {len(step_lines(metrics))}", file=sys.stderr)
                next_fault = time.time() + every
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None: p.send_signal(signal.SIGTERM)
        time.sleep(2)
        for p in procs:
            if p.poll() is None: p.kill()
    lines = step_lines(metrics)
    model = os.path.join(out, "model.safetensors")
    if len(lines) < steps or not os.path.exists(model):
        sys.exit(f"chaos-bench: the {'chaos' if chaos else 'undisturbed'} run ended at {len(lines)} of {steps} steps (log: {out}/cluster.log)")
    # Wall time from the warm-up's last step line to the run's last one (polled every 50 ms): process start-up and the
    # final evaluation are left out, and every pause a fault causes (detection, roll-back, steps computed again) is in.
    if t_end is None: t_end = time.time()   # the deadline ended the round
    rate = sum(l.get("samples", batch) for l in lines[warmup:]) / (t_end - t_warm)
    return rate, hashlib.sha256(open(model, "rb").read()).hexdigest(), done, out

plain, plain_sha, _, _ = run(False)
print(f"undisturbed: {plain:,.0f} samples/s", flush=True)
chaos, chaos_sha, n, out = run(True)
print(f"chaos ({n} faults, one every {every:g} s): {chaos:,.0f} samples/s = {100 * chaos / plain:.1f} % of undisturbed; "
      f"weights {'identical' if chaos_sha == plain_sha else 'DIFFER'} (log: {out}/cluster.log)")
EOF
