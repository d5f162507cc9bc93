#!/usr/bin/env bash
# One measurement sitting for docs/accuracy.md "Training throughput": libtorch's training step and ours
# (forward + backward + SGD update, one thread, batch 64 and 256) for mlp, cnn and lstm, back to back.
# Run it on a quiet machine (load average ≈ 2 at most) and say so beside the figures.
#   benchmarks/train-sitting.sh [OUT_FILE]
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
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
  "$peers/torchsharp/run.sh" 1 mlp cnn lstm 2>&1 | grep RESULT
  for m in mlp cnn lstm; do "$dt" bench train --model $m --batch 64,256 --threads 1 --reps 5 --json 2>&1; done
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
  date -u; uptime
} 2>&1 | tee -a "${1:-/dev/null}"
