#!/usr/bin/env bash
# Steps/s of two builds of disttrain on the same local multi-process cluster (scripts/local-cluster.sh: a coordinator
# process holding the shard and --workers worker processes of one compute thread on 127.0.0.1), alternating the order
# each round so the shared host's drift does not always favour one. Used for what a change to the data plane costs a step
# (e.g. the frame tags of the authenticated data plane: the build before against the build after).
#   benchmarks/steps-ab.sh BEFORE.dll AFTER.dll [--rounds 3] [--workers 2] [--steps 300] [--warmup 100] [--model mlp --batch 64 --micro-batch 32]
# Prints steps/s per run (steps after the warm-up / their summed step time from metrics.jsonl) and the median ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benchmarks/steps-ab.sh BEFORE.dll AFTER.dll [--rounds R] [--workers N] [--steps N] [--warmup N] [--model M] [--batch B] [--micro-batch M]" >&2; exit 2; }
before=$1; after=$2; shift 2
rounds=3; workers=2; steps=300; warmup=100; model=mlp; batch=64; mb=32; out=${TMPDIR:-/tmp}/disttrain-steps-ab
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --micro-batch) mb=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "steps-ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for dll in "$before" "$after"; do [ -f "$dll" ] || { echo "steps-ab.sh: $dll does not exist; build it first (dotnet build src/DistTrain.Cli -c Release)" >&2; exit 2; }; done
[ "$warmup" -lt "$steps" ] || { echo "steps-ab.sh: --warmup ($warmup) must be below --steps ($steps)" >&2; exit 2; }
rm -rf "$out"; mkdir -p "$out"
echo "# $(date -u +%FT%TZ)  $(lscpu | sed -n 's/^Model name: *//p')  load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq 1 "$rounds"); do
  order="before after"; [ $((r % 2)) -eq 0 ] && order="after before"
  for build in $order; do
    dir="$out/r$r-$build"; dll=$before; [ "$build" = after ] && dll=$after
    echo "steps-ab: round $r of $rounds, $build build, $workers worker process(es), $steps steps ..." >&2
    DISTTRAIN_REBUILD= DISTTRAIN_DLL="$dll" scripts/local-cluster.sh --workers "$workers" --worker-threads 1 -- --model "$model" --dataset fashion-mnist \
      --batch-size "$batch" --micro-batch "$mb" --max-steps "$steps" --checkpoint-every -1 --out "$dir" >"$dir.log" 2>&1 \
      || { echo "steps-ab: the $build run failed; see $dir.log" >&2; exit 1; }
  done
done
python3 - "$out" "$warmup" "$rounds" <<'PY'
import json, statistics, sys
out, warmup, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("| round | before steps/s | after steps/s | after / before |")
print("|---|---|---|---|")
ratios = []
for r in range(1, rounds + 1):
    rate = {}
    for build in ("before", "after"):
        rows = [json.loads(l) for l in open(f"{out}/r{r}-{build}/metrics.jsonl")]
        rows = [x for x in rows if x.get("kind") == "step" and x["step"] >= warmup]
        rate[build] = len(rows) / sum(x["step_s"] for x in rows)
    ratios.append(rate["after"] / rate["before"])
    print(f"| {r} | {rate['before']:.1f} | {rate['after']:.1f} | {ratios[-1]:.3f} |")
print(f"\nmedian after / before over {rounds} round(s): {statistics.median(ratios):.3f} (runs and logs in {out})")
PY
