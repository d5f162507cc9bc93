#!/usr/bin/env python3
# Summarizes gemm-sitting.sh outputs: per sitting, ours vs libtorch (GFLOP/s and ratio) and the peak;
# then the median over sittings. Figures from contaminated reps are marked with *.
#   python3 benchmarks/gemm-summary.py sitting1.txt sitting2.txt ...
import json, re, sys, statistics as st

def parse(path):
    torch, ours, peaks = {}, {}, []
    for line in open(path):
        m = re.match(r"RESULT gemm threads=(\d+) n=(\d+) .*GFLOPs median=([\d.]+)(\(CONTAMINATED\))?.*best=([\d.]+)", line)
        if m:
            torch[(int(m[1]), int(m[2]))] = (float(m[3]), m[4] is None, float(m[5]))
        m = re.match(r"PEAK (\w+) median=([\d.]+)", line)
        if m: peaks.append((m[1], float(m[2])))
        if line.startswith("{"):
            r = json.loads(line)
            ours[(r["threads"], r["variant"], r["m"], r["n"], r["k"])] = (r["gflops"], r["clean"], r["best_gflops"], r["alloc_bytes_per_call"])
    return torch, ours, peaks

runs = [parse(p) for p in sys.argv[1:]]
def med(xs): xs = [x for x in xs if x is not None]; return st.median(xs) if xs else None
def f(x): return "-" if x is None else f"{x:.1f}"
print("| threads | shape | variant | ours GFLOP/s | libtorch GFLOP/s (nn) | ours / libtorch | ours, best rep |")
print("|---|---|---|---|---|---|---|")
keys = sorted({k for _, o, _ in runs for k in o}, key=lambda k: (k[0], k[2] * k[3] * k[4], k[1]))
for k in keys:
    t, variant, m, n, kk = k
    ours = [o[k][0] for _, o, _ in runs if k in o]
    best = [o[k][2] for _, o, _ in runs if k in o]
    clean = all(o[k][1] for _, o, _ in runs if k in o)
    square = m == n == kk
    lt = [tr[(t, n)][0] for tr, _, _ in runs if square and (t, n) in tr]
    ratios = [o[k][0] / tr[(t, n)][0] for tr, o, _ in runs if square and k in o and (t, n) in tr]
    print(f"| {t} | {m}x{n}x{kk} | {variant} | {f(med(ours))}{'' if clean else '*'} | {f(med(lt)) if lt else ''} | "
          f"{(f'{med(ratios):.2f}') if ratios else ''} | {f(max(best))} |")
for i, (_, _, p) in enumerate(runs):
    print(f"sitting {i + 1} peaks: " + ", ".join(f"{a}={b}" for a, b in p))
