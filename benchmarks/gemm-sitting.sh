#!/usr/bin/env bash
# One measurement sitting for docs/benchmarks.md "## SGEMM": CPU, peak, libtorch and ours at 1 and 2
# threads, back to back, then `disttrain bench pair --gemm` at 256 and 1024 (the host's two-core ceiling). Output goes to stdout; run it 2-3 times and take medians (the machine is shared).
#   benchmarks/gemm-sitting.sh [OUT_FILE]
set -uo pipefail
source "$(dirname "$0")/sitting-common.sh"
{
  sitting_header
  for t in 1 2; do
    "$peers/torchsharp/run.sh" $t gemm 2>&1 | grep RESULT
    "$dt" bench gemm --threads $t --json 2>&1
  done
  # The two-core ceiling of the same minutes: one-thread SGEMM alone / two copies / the two-thread team, alternating.
  for n in 256 1024; do "$dt" bench pair --gemm $n --rounds 20 --phase-ms 400 --json 2>/dev/null; done
  sitting_footer
} 2>&1 | tee -a "${1:-/dev/null}"
