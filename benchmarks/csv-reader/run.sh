#!/usr/bin/env bash
# CSV loading speed: DistTrain's CsvReader (Sep) against the old string.Split parser, medians of 7 alternating reps.
#   benchmarks/csv-reader/run.sh [CSV]   (default: generates a 100,000 × 64 file in $TMPDIR once)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dotnet run -c Release --project "$here/csv-reader.csproj" -- "$@"
