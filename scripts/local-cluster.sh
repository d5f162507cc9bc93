#!/usr/bin/env bash
# Local multi-process cluster on 127.0.0.1: one coordinator process (`disttrain train ... --cluster-port`),
# N worker processes (`disttrain node --roles worker`) and, with --ps-nodes P, P parameter-server processes
# (`disttrain node --roles ps`) that hold the shards (without it the coordinator's process holds them), and with --ps-spares K
# K more that wait as spares. Waits for the result (the same DIR/model.safetensors as `disttrain train`) and stops every
# process on exit, on Ctrl-C, or when the coordinator fails. Like a process supervisor it restarts a parameter-server
# process that dies: the coordinator gives the lost range to a spare (or to the restarted process) and the shards roll back
# to the state it holds; a worker that dies is not restarted (training goes on with the others). With --standby a second
# coordinator process (`train --standby`) stands by and takes the run over if the coordinator's process dies.
#   scripts/local-cluster.sh --workers 2 [--ps-shards 1] [--ps-nodes P] [--ps-spares K] [--standby] [--port 4053] [--worker-threads T] -- --model cnn --dataset fashion-mnist --out runs/cnn
set -euo pipefail
cd "$(dirname "$0")/.."
workers=2; shards=""; psnodes=0; spares=0; standby=0; port=${DISTTRAIN_PORT:-0}; wthreads=0
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --ps-shards) shards=$2; shift 2 ;;
    --ps-nodes) psnodes=$2; shift 2 ;;
    --ps-spares) spares=$2; shift 2 ;;
    --standby) standby=1; shift ;;
    --port) port=$2; shift 2 ;;
    --worker-threads) wthreads=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "local-cluster.sh: unknown option $1 (expected --workers N, --ps-shards S, --ps-nodes P, --ps-spares K, --standby, --port P, --worker-threads T, then -- and the train options)" >&2; exit 2 ;;
  esac
done
[ -n "$shards" ] || { [ "$psnodes" -gt 0 ] && shards=$psnodes || shards=1; }
if [ "$standby" = 1 ] && [ "$psnodes" -eq 0 ]; then echo "local-cluster.sh: --standby needs --ps-nodes (the shards must outlive the coordinator's process)" >&2; exit 2; fi
if [ "$spares" -gt 0 ] && [ "$psnodes" -eq 0 ]; then echo "local-cluster.sh: --ps-spares needs --ps-nodes (spares stand in for parameter-server processes)" >&2; exit 2; fi
if [ "$psnodes" -gt 0 ] && [ $((shards % psnodes)) -ne 0 ]; then
  echo "local-cluster.sh: --ps-shards $shards does not divide among --ps-nodes $psnodes; give a multiple of it" >&2; exit 2
fi
[ "$port" -gt 0 ] 2>/dev/null || port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# DISTTRAIN_DLL: another build of disttrain.dll (an A/B of two builds on the same machine).
dll=${DISTTRAIN_DLL:-src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll}
[ -f "$dll" ] && [ -z "${DISTTRAIN_REBUILD:-}" ] || dotnet build src/DistTrain.Cli -c Release -nologo -v q >&2
logs=$(mktemp -d /tmp/disttrain-cluster.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do [ "$p" -gt 0 ] && kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do [ "$p" -gt 0 ] && kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
finished=0
trap '[ "$finished" = 1 ] || { echo "local-cluster: interrupted" >&2; exit 130; }' INT TERM

pslocal=(); [ "$psnodes" -gt 0 ] && pslocal=(--ps-local 0)
dotnet "$dll" train "$@" --workers 0 --ps-shards "$shards" "${pslocal[@]}" --cluster-port "$port" --wait-workers "$workers" &
coord=$!; pids+=("$coord")
seed="akka.tcp://disttrain@127.0.0.1:$port"
lead=$coord   # the coordinator the script waits for: the standby once it took over
start_ps() { dotnet "$dll" node --roles ps --ps-actors $((shards / psnodes)) --seed-nodes "$seed" >>"$logs/ps$1.log" 2>&1 & }
psall=$((psnodes + spares))
for i in $(seq 1 "$psall"); do
  start_ps "$i"
  pids+=("$!")
done
for i in $(seq 1 "$workers"); do
  dotnet "$dll" node --roles worker --seed-nodes "$seed" --threads "$wthreads" >"$logs/worker$i.log" 2>&1 &
  pids+=("$!")
done
standby_pid=0
if [ "$standby" = 1 ]; then
  # Joins once the coordinator listens (it must be the younger node: the singleton runs on the oldest).
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || ! kill -0 "$coord" 2>/dev/null; do sleep 0.2; done
  dotnet "$dll" train "$@" --ps-shards "$shards" --standby "$seed" &
  standby_pid=$!; pids+=("$standby_pid")
  echo "local-cluster: standby coordinator pid $standby_pid" >&2
fi
echo "local-cluster: coordinator pid $coord on $seed, $psnodes parameter-server process(es) and $spares spare(s), $workers worker process(es); their logs in $logs" >&2
# Wait for the coordinator (the standby once it took over); restart a ps process that dies.
while kill -0 "$lead" 2>/dev/null || { [ "$lead" = "$coord" ] && [ "$standby_pid" -gt 0 ] && kill -0 "$standby_pid" 2>/dev/null && lead=$standby_pid; }; do
  for i in $(seq 1 $((psall + workers))); do
    p=${pids[$i]}
    if [ "$p" -gt 0 ] && ! kill -0 "$p" 2>/dev/null && kill -0 "$lead" 2>/dev/null; then
      wait "$p" && rc=0 || rc=$?
      pids[$i]=0
      if [ "$rc" -ne 0 ]; then
        if [ "$i" -le "$psall" ]; then
          echo "local-cluster: parameter-server process $i exited with $rc (log: $logs/ps$i.log); restarting it (its range goes to a spare, or back to it)" >&2
          start_ps "$i"
          pids[$i]=$!
          continue
        fi
        echo "local-cluster: worker $((i - psall)) exited with $rc (log: $logs/worker$((i - psall)).log); training goes on with the others" >&2
      fi
    fi
  done
  sleep 1
done
wait "$lead" && rc=0 || rc=$?
finished=1
exit "$rc"
