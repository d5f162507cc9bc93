#!/usr/bin/env bash
# The ceiling of two-process scaling on this host: the same single-thread training step (no cluster, no
# communication) run alone, then as two independent processes at once, alternating for R rounds.
# Two worker processes of a cluster cannot beat two processes that share nothing but the machine,
# so (pair sum) / (alone) bounds what scripts/scaling.sh can show in the same sitting.
#   benchmarks/pair-ceiling/run.sh [ROUNDS=6] [MODEL=cnn] [BATCH=128] [DLL=build of src/DistTrain.Cli]
# Prints one line per round (alone before/after, each of the pair, ratio) and the median ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-6}; model=${2:-cnn}; batch=${3:-128}; dll=${4:-}
if [ -z "$dll" ]; then
  dotnet build src/DistTrain.Cli -c Release -nologo -v q -o "${TMPDIR:-/tmp}/disttrain-pair-ceiling" >&2
  dll=${TMPDIR:-/tmp}/disttrain-pair-ceiling/disttrain.dll
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
bench() { dotnet "$dll" bench train --model "$model" --batch "$batch" --threads 1 --reps 5 --rep-seconds 1 --json 2>/dev/null \
  | python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.startswith("{")][-1]["samples_per_s"])'; }
echo "# $(date -u +%FT%TZ)  $(lscpu | sed -n 's/^Model name: *//p')  $model batch $batch, 1 thread, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %10s %10s %10s %10s %7s\n' round alone pair_a pair_b alone2 ratio
ratios=()
prev=$(bench)
for r in $(seq 1 "$rounds"); do
  bench >"$tmp/a" & pa=$!
  bench >"$tmp/b"; wait $pa
  next=$(bench)
  ratio=$(python3 -c "print(f'{($(cat "$tmp/a")+$(cat "$tmp/b"))/(($prev+$next)/2):.2f}')")
  printf '%-6s %10s %10s %10s %10s %7s\n' "$r" "$prev" "$(cat "$tmp/a")" "$(cat "$tmp/b")" "$next" "$ratio"
  ratios+=("$ratio"); prev=$next
done
echo "median pair/alone: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')"
