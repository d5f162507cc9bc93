#!/usr/bin/env bash
# Cost of TLS on Akka remoting for a training run: the same local multi-process cluster (a coordinator process and
# --workers worker processes on 127.0.0.1, scripts/local-cluster.sh) once with plain TCP remoting and once with TLS and
# mutual authentication (certificates from scripts/make-certs.sh), in alternating order for --rounds rounds, so the
# shared host's drift does not always favour one. Only the control messages cross Akka remoting (tensors use the data
# plane), so a small model with many short steps shows the cost best.
#   scripts/bench-tls.sh [--rounds 3] [--workers 2] [--steps 300] [--warmup 100] [--model mlp --batch 64 --micro-batch 32] [-- more train options]
# Prints steps/s per run (steps after the warm-up / their summed step time from metrics.jsonl) and the median ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3; workers=2; steps=300; warmup=100; model=mlp; batch=64; mb=32; out=${TMPDIR:-/tmp}/disttrain-bench-tls
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
    --) shift; break ;;
    *) echo "bench-tls.sh: unknown option $1 (expected --rounds R, --workers N, --steps N, --warmup N, --model M, --batch B, --micro-batch M, --out DIR, then -- and train options)" >&2; exit 2 ;;
  esac
done
[ "$warmup" -lt "$steps" ] || { echo "bench-tls.sh: --warmup ($warmup) must be below --steps ($steps)" >&2; exit 2; }
dotnet build src/DistTrain.Cli -c Release -nologo -v q >&2
rm -rf "$out"; mkdir -p "$out"
scripts/make-certs.sh --out "$out/certs" 127.0.0.1 2>/dev/null
echo "# $(date -u +%FT%TZ)  $(lscpu | sed -n 's/^Model name: *//p')  load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq 1 "$rounds"); do
  order="plain tls"; [ $((r % 2)) -eq 0 ] && order="tls plain"
  for mode in $order; do
    dir="$out/r$r-$mode"
    echo "bench-tls: round $r of $rounds, $mode remoting, $workers worker process(es), $steps steps ..." >&2
    tls=(); [ "$mode" = tls ] && tls=(env DISTTRAIN_TLS_CERT="$out/certs/127.0.0.1.p12" DISTTRAIN_TLS_CA="$out/certs/ca.pem")
    DISTTRAIN_REBUILD= "${tls[@]}" scripts/local-cluster.sh --workers "$workers" --worker-threads 1 -- --model "$model" --dataset fashion-mnist \
      --batch-size "$batch" --micro-batch "$mb" --max-steps "$steps" --checkpoint-every -1 --out "$dir" "$@" >"$dir.log" 2>&1 \
      || { echo "bench-tls: the $mode run failed; see $dir.log" >&2; exit 1; }
    grep -q "akka.ssl.tcp" "$dir.log" && [ "$mode" = plain ] && { echo "bench-tls: the plain run used TLS" >&2; exit 1; }
    [ "$mode" = tls ] && ! grep -q "akka.ssl.tcp" "$dir.log" && { echo "bench-tls: the TLS run did not use TLS (see $dir.log)" >&2; exit 1; }
  done
done
python3 - "$out" "$warmup" "$rounds" <<'PY'
import json, statistics, sys
out, warmup, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("| round | plain steps/s | TLS steps/s | TLS / plain |")
print("|---|---|---|---|")
ratios = []
for r in range(1, rounds + 1):
    rate = {}
    for mode in ("plain", "tls"):
        rows = [json.loads(l) for l in open(f"{out}/r{r}-{mode}/metrics.jsonl")]
        rows = [x for x in rows if x.get("kind") == "step" and x["step"] >= warmup]
        rate[mode] = len(rows) / sum(x["step_s"] for x in rows)
    ratios.append(rate["tls"] / rate["plain"])
    print(f"| {r} | {rate['plain']:.1f} | {rate['tls']:.1f} | {ratios[-1]:.3f} |")
print(f"\nmedian TLS / plain over {rounds} round(s): {statistics.median(ratios):.3f} (runs and logs in {out})")
PY
