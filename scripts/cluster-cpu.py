#!/usr/bin/env python3
# CPU per training step of each process of a local cluster (issue 4 scaling): runs scripts/local-cluster.sh with
# the cnn preset, batch 256, micro-batch 128, one compute thread per worker, and reads utime+stime of every thread
# of the coordinator/PS and worker processes from /proc between two step counts of metrics.jsonl. Robust to a
# loaded host where wall-clock speed-ups are not: it says how much CPU each process spends per step, and on what.
#   scripts/cluster-cpu.py LABEL [--workers 2] [--steps 200] [--from 80] [--to 190] [--perf] [NAME=VALUE ...]
# NAME=VALUE pairs go into the processes' environment (e.g. DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=70 for an
# A/B); --perf records `perf record -F 499 -g` of every process over the window (perf report --no-children --sort comm,sym).
import argparse, collections, json, os, random, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("label"); ap.add_argument("--workers", type=int, default=2); ap.add_argument("--steps", type=int, default=200)
ap.add_argument("--from", dest="w0", type=int, default=80); ap.add_argument("--to", dest="w1", type=int, default=190)
ap.add_argument("--perf", action="store_true"); ap.add_argument("--out", default=os.environ.get("TMPDIR", "/tmp") + "/disttrain-cpu")
ap.add_argument("env", nargs="*")
a = ap.parse_args()
if not a.w0 < a.w1 < a.steps: sys.exit("cluster-cpu: need --from < --to < --steps")
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
port = random.randint(42000, 48000)
out = f"{a.out}/{a.label}-w{a.workers}"
subprocess.run(["rm", "-rf", out]); os.makedirs(a.out, exist_ok=True)
env = dict(os.environ)
for kv in a.env: k, v = kv.split("=", 1); env[k] = v
if a.perf: env.update(DOTNET_PerfMapEnabled="1", DOTNET_EnableWriteXorExecute="0")  # JIT symbols for perf
cluster = subprocess.Popen(["timeout", "1800", "scripts/local-cluster.sh", "--workers", str(a.workers), "--worker-threads", "1", "--port", str(port), "--",
    "--model", "cnn", "--dataset", "fashion-mnist", "--batch-size", "256", "--micro-batch", "128", "--max-steps", str(a.steps), "--out", out],
    stdout=open(out + ".log", "w"), stderr=subprocess.STDOUT, env=env)
tick = os.sysconf("SC_CLK_TCK")

def processes():
    found = {}
    for line in subprocess.run(["pgrep", "-af", str(port)], capture_output=True, text=True).stdout.splitlines():
        pid, cmd = line.split(" ", 1)
        if "disttrain.dll train" in cmd: found["coordinator/PS"] = int(pid)
        elif "disttrain.dll node" in cmd: found[f"worker {pid}"] = int(pid)
    return found

def threads(pid):  # (tid, name) -> CPU ms
    cpu = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try: stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except FileNotFoundError: continue
        fields = stat[stat.rindex(")") + 2:].split()
        cpu[(tid, stat[stat.index("(") + 1:stat.rindex(")")])] = (int(fields[11]) + int(fields[12])) * 1000 / tick
    return cpu

def last_step():
    try: return max((j["step"] for j in map(json.loads, open(out + "/metrics.jsonl")) if j.get("kind") == "step"), default=-1)
    except FileNotFoundError: return -1

def wait_for(step):
    while last_step() < step:
        if cluster.poll() is not None: sys.exit(f"cluster-cpu: the run ended before step {step}; see {out}.log")
        time.sleep(0.2)

wait_for(a.w0)
procs, s0, t0 = processes(), last_step(), time.time()
before = {k: threads(p) for k, p in procs.items()}
recorders = [subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", f"{out}.{p}.perf.data", "-p", str(p), "--", "sleep", "15"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in procs.values()] if a.perf else []
wait_for(a.w1)
s1, t1 = last_step(), time.time()
after = {k: threads(p) for k, p in procs.items()}
for r in recorders: r.wait()
n = s1 - s0
print(f"## {a.label} {' '.join(a.env)}: {a.workers} worker(s), steps {s0}->{s1}, {1000 * (t1 - t0) / n:.1f} ms/step wall, load {open('/proc/loadavg').read().split()[0]}")
for k in procs:
    by_name = collections.Counter()
    for t, ms in after[k].items(): by_name[t[1]] += ms - before[k].get(t, 0)
    total = sum(by_name.values())
    print(f"{k:16s} {total / n:6.1f} ms CPU/step  [" + ", ".join(f"{name}={ms / n:.1f}" for name, ms in by_name.most_common(6) if ms > 0) + "]")
cluster.wait()
