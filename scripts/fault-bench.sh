#!/usr/bin/env bash
# Fault benchmark (issue 14): a local cluster (scripts/local-cluster.sh) trains; once --after steps are done one worker
# process gets the fault, and the coordinator's metrics.jsonl is watched (every 5 ms) for when each step completes.
#   scripts/fault-bench.sh --fault kill                 # kill -9 of a worker: how long after the kill the next step completes
#   scripts/fault-bench.sh --fault kill-ps              # kill -9 of one of 2 parameter-server processes (a third waits as a
#                                                       # spare): how long until the shards are back and the next new step
#   scripts/fault-bench.sh --fault kill-coordinator     # kill -9 of the coordinator's process (2 ps processes, a standby
#                                                       # coordinator): how long until the standby took over and a new step
#   scripts/fault-bench.sh --fault stop --seconds 20    # SIGSTOP, SIGCONT after 20 s: the longest gap between steps meanwhile
#   scripts/fault-bench.sh --fault kill --workers 3 -- --model cnn --micro-batch 32   # other train options after --
# Prints the median step interval before the fault beside the figure, and whether the run finished.
set -euo pipefail
cd "$(dirname "$0")/.."
fault=kill; after=40; seconds=20; workers=2; steps=300
while [ $# -gt 0 ]; do
  case "$1" in
    --fault) fault=$2; shift 2 ;;
    --after) after=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "fault-bench.sh: unknown option $1 (expected --fault kill|stop, --after N, --seconds S, --workers N, --steps N, then -- and train options)" >&2; exit 2 ;;
  esac
done
case "$fault" in kill|stop|kill-ps|kill-coordinator) ;; *) echo "fault-bench.sh: --fault must be kill, stop, kill-ps or kill-coordinator, not $fault" >&2; exit 2 ;; esac
dll=${DISTTRAIN_DLL:-src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll}
[ -f "$dll" ] || dotnet build src/DistTrain.Cli -c Release -nologo -v q >&2
exec python3 - "$fault" "$after" "$seconds" "$workers" "$steps" "$@" <<'EOF'
import json, os, re, signal, socket, statistics, subprocess, sys, tempfile, time
fault, after, seconds, workers, steps = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
extra = sys.argv[6:]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
out = tempfile.mkdtemp(prefix="disttrain-fault-")
train = ["--model", "mlp", "--dataset", "fashion-mnist", "--micro-batch", "8", "--epochs", "1", "--max-steps", str(steps), "--out", out] + extra
log = open(os.path.join(out, "cluster.log"), "w")
ps = ["--ps-nodes", "2", "--ps-spares", "1"] if fault == "kill-ps" else ["--ps-nodes", "2", "--standby"] if fault == "kill-coordinator" else []
cluster = subprocess.Popen(["scripts/local-cluster.sh", "--workers", str(workers), "--port", str(port)] + ps + ["--"] + train,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
metrics = os.path.join(out, "metrics.jsonl")
seen, times, step_s, deadline = 0, [], [], time.time() + 600

def poll():
    # A step's line can be written late (the metrics wait for every micro-batch's report), so the time it appears only
    # places it; its own step_s (start to applied, measured by the coordinator) is the step's duration.
    global seen
    try:
        with open(metrics) as f: lines = [json.loads(l) for l in f if '"kind":"step"' in l]
    except (FileNotFoundError, json.JSONDecodeError): return
    now = time.time()
    while seen < len(lines): times.append(now); step_s.append(lines[seen].get("step_s", float("nan"))); seen += 1

def shard_pid():
    # The coordinator names each shard's node ("shard 0 of 2 holds [a, b) on akka.tcp://disttrain@127.0.0.1:PORT/ps0"): the
    # process listening on that port holds shard 0.
    m = re.search(r"shard 0 of \d+ holds \[\d+, \d+\) on akka\.tcp://[^@]+@[^:]+:(\d+)/", open(os.path.join(out, "cluster.log")).read())
    r = subprocess.run(["ss", "-ltnpH", f"sport = :{m.group(1)}"], capture_output=True, text=True)
    return int(re.search(r"pid=(\d+)", r.stdout).group(1))

marks = {}
def back():
    # When the coordinator said each stage of the recovery: the loss seen, the range taken over, every shard back.
    with open(os.path.join(out, "cluster.log")) as f: text = f.read()
    now = time.time() - t0
    needles = (("seen", "lost (its"), ("back", "every shard is back at "), ("step", "after the shard was lost (recovered)"))
    if fault == "kill-coordinator":
        needles = (("seen", "downing that node so that this one takes over"), ("back", "every shard is back at "), ("step", "after this coordinator took over (recovered)"))
    for key, needle in needles:
        if key not in marks and needle in text: marks[key] = now
    return "step" in marks

def worker_pids():
    r = subprocess.run(["pgrep", "-f", f"node --roles worker --seed-nodes akka.tcp://disttrain@127.0.0.1:{port}"], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]

try:
    while seen < after and cluster.poll() is None and time.time() < deadline: poll(); time.sleep(0.005)
    if seen < after: sys.exit(f"fault-bench: the run made {seen} steps before it ended or timed out; see {out}/cluster.log")
    before = step_s[-20:]
    if fault == "kill-coordinator":
        victim = int(re.search(r"local-cluster: coordinator pid (\d+)", open(os.path.join(out, "cluster.log")).read()).group(1))
    else:
        victim = shard_pid() if fault == "kill-ps" else worker_pids()[-1]
    t0 = time.time(); at = seen
    os.kill(victim, signal.SIGSTOP if fault == "stop" else signal.SIGKILL)
    resumed, recovered = False, None
    while cluster.poll() is None and time.time() < deadline:
        poll()
        if fault == "stop" and not resumed and time.time() - t0 >= seconds: os.kill(victim, signal.SIGCONT); resumed = True
        if fault == "kill" and seen > at + 5: break
        if fault in ("kill-ps", "kill-coordinator") and recovered is None and back(): recovered = time.time() - t0
        if fault in ("kill-ps", "kill-coordinator") and recovered is not None and seen > at: break
        time.sleep(0.005)
    if fault == "stop" and not resumed: os.kill(victim, signal.SIGCONT)
    cluster.wait(timeout=max(1, deadline - time.time()))
    poll()
    median = statistics.median(before)
    what = {"kill-ps": "parameter-server process holding shard 0", "kill-coordinator": "the coordinator's process (a standby waits)"}.get(fault, "a worker")
    print(f"fault-bench: {fault} of {what} after step {at}; {workers} workers; train {' '.join(train)}")
    print(f"  median step time before the fault: {median * 1000:.1f} ms")
    after_fault = [t for t in times[at:]]
    if fault == "kill":
        # The step under way may not have needed the killed worker: the longest of the next 5 steps is the price.
        print(f"  longest of the 5 steps after the kill: {max(step_s[at:at + 5]):.3f} s; their lines were all written "
              f"{after_fault[min(4, len(after_fault) - 1)] - t0:.3f} s after the kill")
    elif fault == "kill-ps":
        # The steps after the newest replicated state are computed again before a new step is logged.
        m = re.search(r"rolling back to (?:step|round) (\d+)", open(os.path.join(out, "cluster.log")).read())
        print(f"  every shard back (spare holds the range, all rolled back to step {m.group(1) if m else '?'}): {marks.get('back', float('nan')):.3f} s after the kill")
        m2 = re.search(r"(?:step|round) (\d+) applied ([0-9.]+) s after the shard was lost", open(os.path.join(out, "cluster.log")).read())
        print(f"  loss seen {marks.get('seen', float('nan')):.3f} s after the kill; first step applied after the roll-back (step {m2.group(1) if m2 else '?'}): "
              f"{m2.group(2) if m2 else '?'} s after the loss was seen (coordinator's clock), line read {marks.get('step', float('nan')):.3f} s after the kill")
    elif fault == "kill-coordinator":
        text = open(os.path.join(out, "cluster.log")).read()
        m = re.search(r"rolls back to (?:step|round) (\d+) \((?:step|round)s up to (\d+)", text)
        print(f"  standby downed the coordinator's node {marks.get('seen', float('nan')):.3f} s after the kill; every shard back "
              f"(rolled back to {m.group(1) if m else '?'} of {m.group(2) if m else '?'}) {marks.get('back', float('nan')):.3f} s after the kill")
        new = next((times[i] for i in range(at, len(times))), float("nan"))
        print(f"  first step applied after the take-over: line read {marks.get('step', float('nan')):.3f} s after the kill; the first new line "
              f"(step {at}) {new - t0:.3f} s after the kill")
    else:
        during = [i for i, t in enumerate(times) if i >= at and t <= t0 + seconds]
        longest = max((step_s[i] for i in during), default=float("nan"))
        print(f"  steps during the {seconds:.0f} s stop: {len(during)}; the longest of them: {longest:.3f} s")
    print(f"  run finished: {'yes' if cluster.returncode == 0 else f'no (exit {cluster.returncode})'}, {seen} of {steps} steps; output in {out}")
finally:
    if cluster.poll() is None: os.killpg(cluster.pid, signal.SIGTERM)
EOF
