#!/usr/bin/env bash
# Runs every test project (Release) and ends with one plain line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
log=$(mktemp)
dotnet build DistTrain.sln -c Release -nologo -v q 2>&1 | tail -3
dotnet test DistTrain.sln -c Release --no-build -nologo "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
read -r passed failed skipped < <(grep -oE 'Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" |
  awk -F'[:,] *' '{f+=$2; p+=$4; s+=$6} END {print p+0, f+0, s+0}')
rm -f "$log"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; echo "dotnet test exited with $rc" >&2; fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ]
