#!/usr/bin/env bash
# Main job: set-up (dataset, fonts), build, then train the `cnn` preset on Fashion-MNIST on a local
# cluster: one coordinator/PS process and WORKERS worker processes on 127.0.0.1 (default 2). Each global
# batch of 128 is cut into 4 micro-batches of 32, so both workers have work in every step.
#   scripts/train.sh                 # 2 epochs, 2 workers, out: runs/cnn-cluster
#   EPOCHS=12 WORKERS=2 OUT=runs/cnn12 scripts/train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dotnet build src/DistTrain.Cli -c Release -nologo -v q
DISTTRAIN_REBUILD= exec scripts/local-cluster.sh --workers "${WORKERS:-2}" -- \
  --model cnn --dataset fashion-mnist --epochs "${EPOCHS:-2}" --micro-batch 32 --out "${OUT:-runs/cnn-cluster}" "$@"
