#!/usr/bin/env python3
# A/B of `disttrain bench transport` builds or options on a shared machine: runs each configuration REPS times,
# interleaved (so load changes hit every side alike), and prints per (mode, MiB, config) the median MB/s,
# sender and receiver CPU s/GB, the median total, and the worst allocation per transfer.
# usage: benchmarks/transport-ab.py REPS MEGABYTES NAME=BINDIR[:EXTRA ARGS] ...
#   e.g. benchmarks/transport-ab.py 4 512 before=/tmp/base after=src/DistTrain.Cli/bin/Release/net10.0
#        benchmarks/transport-ab.py 4 384 b8M=DIR:"--socket-buffer-bytes 8388608" b256K=DIR:"--socket-buffer-bytes 262144"
import collections, json, statistics, subprocess, sys, time

reps, megabytes = int(sys.argv[1]), sys.argv[2]
configs = [a.split('=', 1) for a in sys.argv[3:]]
results = collections.defaultdict(list)
loads = []
for rep in range(reps):
    for name, spec in configs:
        bindir, _, extra = spec.partition(':')
        cmd = [bindir + '/disttrain', 'bench', 'transport', '--json', '--no-iperf', '--megabytes', megabytes] + extra.split()
        loads.append(open('/proc/loadavg').read().split()[0])
        out = subprocess.run(['timeout', '300'] + cmd, capture_output=True, text=True).stdout
        for line in out.splitlines():
            d = json.loads(line)
            results[(d['mode'], d['MiB'], name)].append(d)
    print(f'rep {rep} done {time.strftime("%H:%M:%S")}', file=sys.stderr, flush=True)

print('load average (1 min) at each run:', ' '.join(loads))
print(f"{'mode':10} {'MiB':>3} {'config':12} {'MB/s':>7} {'send':>6} {'recv':>6} {'total':>6} {'[min]':>7}  alloc B/transfer send/recv")
for key in sorted(results, key=lambda k: (k[0], k[1], k[2])):
    rows = results[key]
    med = lambda f: statistics.median(r[f] for r in rows)
    totals = [r['cpu_s/GB_send'] + r['cpu_s/GB_recv'] for r in rows]
    print(f"{key[0]:10} {key[1]:3} {key[2]:12} {med('MB/s'):7.0f} {med('cpu_s/GB_send'):6.3f} {med('cpu_s/GB_recv'):6.3f} "
          f"{statistics.median(totals):6.3f} [{min(totals):5.3f}]  "
          f"{max(r['alloc_B/transfer_send'] for r in rows):.1f}/{max(r['alloc_B/transfer_recv'] for r in rows):.1f}")
