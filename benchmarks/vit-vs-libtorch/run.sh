#!/usr/bin/env bash
# Training throughput of the `vit` preset, one sitting: DistTrain (`disttrain bench train --model vit`), then libtorch
# (TorchSharp-cpu 0.107.0) on the same model (Program.cs), each the median samples/s of ~1 s reps, batch 64 and 256.
#   benchmarks/vit-vs-libtorch/run.sh [THREADS]     (default 1)
# The libtorch side is built outside the repository (its central package versions do not hold TorchSharp), with the
# libstdc++ patch, shim and Clean.cs of ../shared/peers/torchsharp (TORCHSHARP_PEER_SRC to point elsewhere).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
threads=${1:-1}
peer_src=${TORCHSHARP_PEER_SRC:-$(cd "$repo/.." && pwd)/shared/peers/torchsharp}
work=${XDG_CACHE_HOME:-$HOME/.cache}/disttrain-peer-vit
mkdir -p "$work"
cp "$peer_src"/TsBench.csproj "$work"/TsVit.csproj
cp "$peer_src"/shim.cpp "$peer_src"/patch_torchsharp.sh "$peer_src"/Clean.cs "$here"/Program.cs "$work"/
command -v patchelf >/dev/null || { apt-get update -qq && apt-get install -y -qq patchelf >/dev/null; }
(cd "$work" && { [ -f libiosinit_shim.so ] || g++ -O2 -shared -fPIC -o libiosinit_shim.so shim.cpp; }
  dotnet build -c Release -nologo -v q >build.log 2>&1 || { grep -E " error " build.log | sort -u; exit 1; }
  lib=bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so
  if readelf -V "$lib" 2>/dev/null | grep -q "GLIBCXX_3.4.32  Flags: none"; then bash patch_torchsharp.sh "$lib" >/dev/null; fi)
dll="$repo/src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll"
dotnet build -c Release -nologo -v q "$repo/src/DistTrain.Cli" >/dev/null   # the preset is compiled in: never bench a stale one
lscpu | grep 'Model name'; uptime
dotnet "$dll" bench train --model vit --batch 64,256 --threads "$threads" --reps 5
(cd "$work" && LD_PRELOAD="$work/libiosinit_shim.so" dotnet bin/Release/net10.0/TsVit.dll "$threads" 64 256)
uptime
