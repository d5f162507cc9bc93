#!/usr/bin/env bash
# One measurement sitting for docs/benchmarks.md "## Convolution": CPU, peak, libtorch's conv and ours,
# back to back. Run it 2-3 times and take medians (the machine is shared).
#   benchmarks/conv-sitting.sh [OUT_FILE]
set -uo pipefail
source "$(dirname "$0")/sitting-common.sh"
{
  sitting_header
  "$peers/torchsharp/run.sh" 1 conv 2>&1 | grep RESULT
  "$dt" bench conv --threads 1 --json 2>&1
  "$dt" bench conv --threads 2 --json 2>&1 | grep fwd_bwd
  sitting_footer
} 2>&1 | tee -a "${1:-/dev/null}"
