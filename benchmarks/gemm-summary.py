#!/usr/bin/env python3
# Summarizes gemm-sitting.sh outputs into the tables of docs/benchmarks.md: medians over sittings of our
# GFLOP/s and libtorch's, and of the per-sitting ratios (ours / libtorch, ours 2 threads / ours 1 thread: once from the
# two `bench gemm` processes, once as `bench gemm --threads 2` measured it against one-thread reps around each rep).
#   python3 benchmarks/gemm-summary.py s1.txt s2.txt ...
import json, re, sys, statistics as st

def parse(path):
    torch, ours, peaks, pairs = {}, {}, [], {}
    for line in open(path):
        m = re.match(r"RESULT gemm threads=(\d+) n=(\d+) .*GFLOPs median=([\d.]+)(\(CONTAMINATED\))?.*best=([\d.]+)", line)
        if m: torch[(int(m[1]), int(m[2]))] = float(m[3])
        m = re.match(r"PEAK (\w+) median=([\d.]+)", line)
        if m: peaks.append(float(m[2]))
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("work") == "sgemm": pairs[r["m"]] = (r["pair_over_alone"], r["team_over_alone"], r["team_over_pair"])
            elif "kernel" in r:
                ours[(r["threads"], r["variant"], r["m"], r["n"], r["k"])] = (r["gflops"], r["best_gflops"], r["alloc_bytes_per_call"],
                                                                          r.get("speedup_vs_1t"))
    return torch, ours, peaks, pairs

runs = [parse(p) for p in sys.argv[1:]]
def med(xs): return st.median(xs) if xs else None
def f(x, d=1): return "–" if x is None else f"{x:.{d}f}"
def ours(t, key, i=0): return [o[(t,) + key][i] for _, o, _, _ in runs if (t,) + key in o and o[(t,) + key][i] is not None]
def ratio(num, den): return [a / b for a, b in zip(num, den)] if len(num) == len(den) and num else []

print("| n | variant | ours 1T | libtorch 1T | ours/libtorch 1T | ours 2T | libtorch 2T | ours/libtorch 2T | ours 2T/1T (two processes) | ours 2T/1T (bracketed reps) | ours 1T best rep |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
sizes = sorted({k[2] for _, o, _, _ in runs for k in o if k[1] in ("nn", "nt", "tn")})
for n in sizes:
    for v in ("nn", "nt", "tn"):
        key = (v, n, n, n)
        o1, o2 = ours(1, key), ours(2, key)
        t1 = [tr[(1, n)] for tr, o, _, _ in runs if (1, n) in tr and (1,) + key in o]
        t2 = [tr[(2, n)] for tr, o, _, _ in runs if (2, n) in tr and (2,) + key in o]
        print(f"| {n} | {v} | {f(med(o1))} | {f(med(t1))} | {f(med(ratio(o1, t1)), 2)} | {f(med(o2))} | {f(med(t2))} | "
              f"{f(med(ratio(o2, t2)), 2)} | {f(med(ratio(o2, o1)), 2)} | {f(med(ours(2, key, 3)), 2)} | {f(max(ours(1, key, 1), default=None))} |")
print()
print("| training GEMM | m×n×k | ours 1T | ours 2T | 2T/1T (two processes) | 2T/1T (bracketed reps) | ours 1T best rep | alloc bytes/call |")
print("|---|---|---|---|---|---|---|---|")
small = sorted({k[1:] for _, o, _, _ in runs for k in o if k[1] not in ("nn", "nt", "tn")}, key=lambda k: k[0])
for key in small:
    o1, o2 = ours(1, key), ours(2, key)
    alloc = max(ours(1, key, 2) + ours(2, key, 2), default=None)
    print(f"| {key[0]} | {key[1]}×{key[2]}×{key[3]} | {f(med(o1))} | {f(med(o2))} | {f(med(ratio(o2, o1)), 2)} | {f(med(ours(2, key, 3)), 2)} | "
          f"{f(max(ours(1, key, 1), default=None))} | {f(alloc, 0)} |")
pair_sizes = sorted({n for *_, pr in runs for n in pr})
if pair_sizes:
    print()
    print("| n | bench pair: two copies / alone (the host's two-core ceiling) | team (ours 2T) / alone | team / two copies |")
    print("|---|---|---|---|")
    for n in pair_sizes:
        cols = [[pr[n][i] for *_, pr in runs if n in pr] for i in range(3)]
        print(f"| {n} | " + " | ".join(f"{f(med(c), 2)} ({', '.join(f'{x:.2f}' for x in c)})" for c in cols) + " |")
print()
print("AVX2 peak probe per sitting (before, after): " + "; ".join(", ".join(f"{x:.1f}" for x in p) for _, _, p, _ in runs))
