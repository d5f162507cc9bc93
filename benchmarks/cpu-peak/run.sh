#!/usr/bin/env bash
# AVX2 (256-bit) FMA peak of one core, for machines whose CPU (or hypervisor) exposes no AVX-512:
# the same measurement as ../shared/peers/cpu-peak (12 independent vfmadd231ps chains) on ymm registers.
#   benchmarks/cpu-peak/run.sh [REPS=7]   -> one line per rep, then the median
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${XDG_CACHE_HOME:-$HOME/.cache}/disttrain-cpu-peak/peak_avx2
mkdir -p "$(dirname "$bin")"
[ -x "$bin" ] || gcc -O2 -mavx2 -mfma -o "$bin" "$here/peak_avx2.c"
out=$("$bin" "${1:-7}"); echo "$out"
med=$(sed -n 's/.*fma256_GFLOPs=\([0-9.]*\).*/\1/p' <<<"$out" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
echo "PEAK fma256_GFLOPs median=$med (one core)"
