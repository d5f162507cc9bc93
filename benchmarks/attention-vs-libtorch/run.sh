#!/usr/bin/env bash
# DistTrain's MultiheadAttention against libtorch's torch.nn.MultiheadAttention with the same weights, input and
# upstream gradient (the shapes in Cases.cs): output, input gradient and the four parameter gradients, each side in
# float32, both measured against libtorch in float64.
#   benchmarks/attention-vs-libtorch/run.sh
# The libtorch side is built outside the repository (its central package versions do not hold TorchSharp), with the
# libstdc++ patch and shim of ../shared/peers/torchsharp (TORCHSHARP_PEER_SRC to point elsewhere).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
peer_src=${TORCHSHARP_PEER_SRC:-$(cd "$here/../../.." && pwd)/shared/peers/torchsharp}
work=${XDG_CACHE_HOME:-$HOME/.cache}/disttrain-peer-attention
mkdir -p "$work"
cp "$peer_src"/TsBench.csproj "$work"/AttentionPeer.csproj
cp "$peer_src"/shim.cpp "$peer_src"/patch_torchsharp.sh "$here"/Cases.cs "$here"/peer/Program.cs "$work"/
command -v patchelf >/dev/null || { apt-get update -qq && apt-get install -y -qq patchelf >/dev/null; }
(cd "$work" && { [ -f libiosinit_shim.so ] || g++ -O2 -shared -fPIC -o libiosinit_shim.so shim.cpp; }
  dotnet build -c Release -nologo -v q >build.log 2>&1 || { grep -E " error " build.log | sort -u; exit 1; }
  lib=bin/Release/net10.0/runtimes/linux-x64/native/libLibTorchSharp.so
  if readelf -V "$lib" 2>/dev/null | grep -q "GLIBCXX_3.4.32  Flags: none"; then bash patch_torchsharp.sh "$lib" >/dev/null; fi)
dotnet build -c Release -nologo -v q "$here/attention-vs-libtorch.csproj" >/dev/null
cases="$work/cases"
rm -rf "$cases"
dotnet "$here/bin/Release/net10.0/attention-vs-libtorch.dll" "$cases" >/dev/null
(cd "$work" && LD_PRELOAD="$work/libiosinit_shim.so" dotnet bin/Release/net10.0/AttentionPeer.dll "$cases")
