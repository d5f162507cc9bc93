#!/usr/bin/env bash
# Samples/s of the issue-18 presets, one process (`disttrain train`, one thread) and 2 worker processes
# (scripts/local-cluster.sh, one compute thread each, the shard in the coordinator's process), sync mode, each
# preset's default batch cut into 2 micro-batches (so that both workers have one; the one process computes the same
# two). The figure is the median of the per-step samples_per_s in metrics.jsonl after 5 warm-up
# steps (the coordinator's clock: start of a step to its update applied). esn's readout is trained by SGD here
# (--optimizer adam), since the closed-form ridge fit runs in one process only.
#   benchmarks/issue18-presets.sh [PRESET ...]     (default: perceptron conv_autoencoder vae rbm esn gan)
set -uo pipefail
cd "$(dirname "$0")/.."
dll=${DISTTRAIN_DLL:-src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll}
[ -f "$dll" ] || dotnet build src/DistTrain.Cli -c Release -nologo -v q >&2
out=$(mktemp -d /tmp/disttrain-i18.XXXXXX)
presets=("$@"); [ ${#presets[@]} -gt 0 ] || presets=(perceptron conv_autoencoder vae rbm esn gan)
args_for() {
  case "$1" in
    perceptron) echo "--max-steps 600" ;;
    esn) echo "--optimizer adam --lr 0.01 --epochs 30 --max-steps 120 --micro-batch 4" ;;
    conv_autoencoder|vae) echo "--max-steps 120 --micro-batch 64" ;;
    *) echo "--max-steps 60 --micro-batch 32" ;;
  esac
}
median() { python3 -c '
import json, statistics, sys
v = [json.loads(l)["samples_per_s"] for l in open(sys.argv[1]) if "\"kind\":\"step\"" in l][5:]
print(f"{statistics.median(v):,.0f}" if v else "-")' "$1"; }
echo "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) vCPU, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %H:%M UTC')"
echo "| preset | batch | one process | 2 worker processes | 2 workers / one |"
echo "|---|---|---|---|---|"
for p in "${presets[@]}"; do
  # shellcheck disable=SC2046
  dotnet "$dll" train --model "$p" $(args_for "$p") --threads 1 --out "$out/$p-1" >"$out/$p-1.log" 2>&1 || { echo "| $p | one process failed: $out/$p-1.log |"; continue; }
  # shellcheck disable=SC2046
  scripts/local-cluster.sh --workers 2 -- --model "$p" $(args_for "$p") --out "$out/$p-2" >"$out/$p-2.log" 2>&1 || { echo "| $p | cluster failed: $out/$p-2.log |"; continue; }
  one=$(median "$out/$p-1/metrics.jsonl"); two=$(median "$out/$p-2/metrics.jsonl")
  batch=$(sed -n 's/.*job: epochs=[0-9]* batch=\([0-9]*\).*/\1/p' "$out/$p-1.log" | head -1)
  ratio=$(python3 -c "import sys; a,b=(float(x.replace(',','')) for x in sys.argv[1:]); print(f'{b/a:.3g}x')" "$one" "$two" 2>/dev/null || echo -)
  echo "| \`$p\` | $batch | $one | $two | $ratio |"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); logs in $out"
