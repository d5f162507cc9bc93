#!/usr/bin/env bash
# One measurement sitting for docs/accuracy.md "Training throughput": libtorch's training step and ours
# (forward + backward + SGD update, one thread, batch 64 and 256) for mlp, cnn and lstm, back to back.
# Run it on a quiet machine (load average ≈ 2 at most) and say so beside the figures.
#   benchmarks/train-sitting.sh [OUT_FILE]
set -uo pipefail
source "$(dirname "$0")/sitting-common.sh"
{
  sitting_header
  "$peers/torchsharp/run.sh" 1 mlp cnn lstm 2>&1 | grep RESULT
  for m in mlp cnn lstm; do "$dt" bench train --model $m --batch 64,256 --threads 1 --reps 5 --json 2>&1; done
  sitting_footer
} 2>&1 | tee -a "${1:-/dev/null}"
