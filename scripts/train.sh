#!/usr/bin/env bash
# Main job: set-up, build, then train. Until the cluster runtime lands this runs the kernel benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dotnet build src/DistTrain.Cli -c Release -nologo -v q
exec dotnet src/DistTrain.Cli/bin/Release/net10.0/disttrain.dll bench gemm "$@"
