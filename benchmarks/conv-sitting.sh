#!/usr/bin/env bash
# One measurement sitting for docs/benchmarks.md "## Convolution": CPU, peak, libtorch's conv and ours,
# back to back. Run it 2-3 times and take medians (the machine is shared).
#   benchmarks/conv-sitting.sh [OUT_FILE]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS:-$root/../shared/peers}
[ -d "$peers" ] || peers=/work/shared/peers
out=$(mktemp -d)
dotnet build "$root/src/DistTrain.Cli" -c Release -nologo -v q -o "$out" >/dev/null || exit 1
dt="$out/disttrain"
{
  date -u; lscpu | grep -E 'Model name|^CPU\(s\)'; uptime
  grep -qw avx512f /proc/cpuinfo && "$peers/cpu-peak/run.sh" 5 | tail -1 || echo "no avx512f in /proc/cpuinfo"
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
  "$peers/torchsharp/run.sh" 1 conv 2>&1 | grep RESULT
  "$dt" bench conv --threads 1 --json 2>&1
  "$dt" bench conv --threads 2 --json 2>&1 | grep fwd_bwd
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
  date -u; uptime
} 2>&1 | tee -a "${1:-/dev/null}"
