#!/usr/bin/env bash
# ConvTranspose2d forward + backward, batch 64, one thread: DistTrain, then libtorch through TorchSharp-cpu 0.107.0 at
# the same shapes (Shapes.cs), in one sitting; each line is the median GFLOP/s of clean reps (Clean.cs).
#   benchmarks/conv-transpose/run.sh [ROUNDS]    (default 1; every round runs both sides, alternating which goes first)
# The libtorch side is built outside the repository (its central package versions do not hold TorchSharp), with the
# libstdc++ patch and shim of ../shared/peers/torchsharp (TORCHSHARP_PEER_SRC to point elsewhere).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-1}
peer_src=${TORCHSHARP_PEER_SRC:-$(cd "$here/../../.." && pwd)/shared/peers/torchsharp}
work=${XDG_CACHE_HOME:-$HOME/.cache}/disttrain-peer-convt
mkdir -p "$work"
cp "$peer_src"/TsBench.csproj "$work"/ConvtPeer.csproj
cp "$peer_src"/shim.cpp "$peer_src"/patch_torchsharp.sh "$here"/Clean.cs "$here"/Shapes.cs "$here"/peer/Program.cs "$work"/
command -v patchelf >/dev/null || { apt-get update -qq && apt-get install -y -qq patchelf >/dev/null; }
(cd "$work" && { [ -f libiosinit_shim.so ] || g++ -O2 -shared -fPIC -o libiosinit_shim.so shim.cpp; }
  dotnet build -c Release -nologo -v q >build.log 2>&1 || { grep -E " error " build.log | sort -u; exit 1; }
  lib=bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so
  if readelf -V "$lib" 2>/dev/null | grep -q "GLIBCXX_3.4.32  Flags: none"; then bash patch_torchsharp.sh "$lib" >/dev/null; fi)
dotnet build -c Release -nologo -v q "$here/conv-transpose.csproj" >/dev/null
ours() { dotnet "$here/bin/Release/net10.0/conv-transpose.dll"; }
peer() { (cd "$work" && LD_PRELOAD="$work/libiosinit_shim.so" dotnet bin/Release/net10.0/ConvtPeer.dll); }
lscpu | grep 'Model name'; uptime
for ((r = 0; r < rounds; r++)); do
  if ((r % 2 == 0)); then ours; peer; else peer; ours; fi
done
