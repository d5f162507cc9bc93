#!/usr/bin/env bash
# Interleaved SGEMM A/B on a shared machine: builds of DistTrain.Tensors alternate ROUNDS times, and each
# shape's median over the rounds is printed per build. Compare builds, never absolute figures under load.
#   dotnet build src/DistTrain.Tensors -c Release -o /tmp/ab/old   (on the old commit; likewise /tmp/ab/new)
#   benchmarks/gemm-ab/ab.sh ROUNDS THREADS SECONDS "nn:1024x1024x1024 tn:256x784x256+acc" /tmp/ab/old /tmp/ab/new
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=$1 threads=$2 secs=$3 shapes=$4; shift 4
bin=$(mktemp -d)
dotnet build "$here/GemmAb.csproj" -c Release -nologo -v q -o "$bin" >/dev/null
out=$(mktemp)
for _ in $(seq "$rounds"); do
  for build in "$@"; do
    # shellcheck disable=SC2086
    timeout 600 dotnet "$bin/GemmAb.dll" "$build" "$threads" "$secs" $shapes | sed "s|^|$build |" >>"$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics as st, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split(); kv = dict(x.split('=') for x in f[3:])
    runs[(f[1], f[0])].append({k: float(v) for k, v in kv.items()})
for (shape, build), xs in sorted(runs.items()):
    med = lambda key: st.median(x[key] for x in xs)
    print(f"{shape:22s} {build:30s} median of {len(xs)}: cpu {med('cpu_gflops'):6.1f}  wall {med('wall_gflops'):6.1f}  "
          f"p10 {med('p10_gflops'):6.1f}  p50 {med('p50_gflops'):6.1f} GFLOP/s")
PY
