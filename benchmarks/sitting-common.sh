# Sourced by the *-sitting.sh scripts: finds the repository and the peers, builds a private copy of the
# CLI (so that rebuilding the tree during a sitting does not change the binaries measured) as $dt, and
# defines the header and footer every sitting prints (machine, load, peak probe before and after).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peers=${PEERS:-$root/../shared/peers}
[ -d "$peers" ] || peers=/work/shared/peers
out=$(mktemp -d)
dotnet build "$root/src/DistTrain.Cli" -c Release -nologo -v q -o "$out" >/dev/null || exit 1
dt="$out/disttrain"

sitting_header() {
  date -u; lscpu | grep -E 'Model name|^CPU\(s\)'; uptime
  grep -qw avx512f /proc/cpuinfo && "$peers/cpu-peak/run.sh" 5 | tail -1 || echo "no avx512f in /proc/cpuinfo"
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
}

sitting_footer() {
  "$root/benchmarks/cpu-peak/run.sh" 5 | tail -1
  date -u; uptime
}
