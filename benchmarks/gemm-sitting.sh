#!/usr/bin/env bash
# One measurement sitting for docs/benchmarks.md "## SGEMM": CPU, peak, libtorch and ours at 1 and 2
# threads, back to back. Output goes to stdout; run it 2-3 times and take medians (the machine is shared).
#   benchmarks/gemm-sitting.sh [OUT_FILE]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS:-$root/../shared/peers}
[ -d "$peers" ] || peers=/work/shared/peers
# A private copy of the binaries, so that rebuilding the tree during the sitting does not change them.
out=$(mktemp -d)
dotnet build "$root/src/DistTrain.Cli" -c Release -nologo -v q -o "$out" >/dev/null || exit 1
dt="$out/disttrain"
{
  date -u; lscpu | grep -E 'Model name|^CPU\(s\)'; uptime
  grep -qw avx512f /proc/cpuinfo && "$peers/cpu-peak/run.sh" 5 | tail -1 || echo "no avx512f in /proc/cpuinfo"
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
  for t in 1 2; do
    "$peers/torchsharp/run.sh" $t gemm 2>&1 | grep RESULT
    "$dt" bench gemm --threads $t --json 2>&1
  done
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
  date -u; uptime
} 2>&1 | tee -a "${1:-/dev/null}"
