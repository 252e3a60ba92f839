#!/usr/bin/env bash
# The analysis time goal, timed as a user meets it (`make bench-cli`; BENCHMARKS.md
# "Analysis"): `crossguard analyze` on a dump file against a plain parse of the same file
# (examples/parse-baseline.rs), each a fresh process, run alternately ROUNDS times so
# that both meet the same machine. Prints each run's wall time, and the ratio of the
# medians and of the best runs.
#
#   benches/analyze-cli.sh [NODES PODS SEED [ROUNDS]]   (default 5000 150000 1 7)
#
# Needs the release builds of `crossguard` and the two examples (the Makefile target
# builds them); CROSSGUARD=/path/to/crossguard times another build. The dump is written
# once to $TMPDIR and kept for the next run.
set -euo pipefail

nodes=${1:-5000}
pods=${2:-150000}
seed=${3:-1}
rounds=${4:-7}
target=${CARGO_TARGET_DIR:-target}/release
crossguard=${CROSSGUARD:-$target/crossguard}
dump="${TMPDIR:-/tmp}/crossguard-dump-$nodes-$pods-$seed.json"

if [[ ! -s $dump ]]; then
  "$target/examples/synthetic-dump" "$nodes" "$pods" "$seed" >"$dump.tmp"
  mv "$dump.tmp" "$dump"
fi
cat "$dump" >/dev/null # in the page cache, as after a fresh dump

# Wall time of one run in milliseconds; the command's output is discarded.
wall_ms() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
best() { sort -n | head -1; }

plain=() analyze=()
echo "crossguard: $crossguard"
echo "dump: $dump ($(stat -c %s "$dump") bytes); $rounds rounds, alternating"
for ((r = 1; r <= rounds; r++)); do
  p=$(wall_ms "$target/examples/parse-baseline" "$dump")
  a=$(wall_ms "$crossguard" analyze --snapshot "$dump")
  plain+=("$p") analyze+=("$a")
  echo "round $r: plain parse $p ms, crossguard analyze $a ms ($(awk -v a="$a" -v p="$p" 'BEGIN { printf "%.2f", a / p }')x)"
done
pm=$(printf '%s\n' "${plain[@]}" | median)
am=$(printf '%s\n' "${analyze[@]}" | median)
pb=$(printf '%s\n' "${plain[@]}" | best)
ab=$(printf '%s\n' "${analyze[@]}" | best)
awk -v pm="$pm" -v am="$am" -v pb="$pb" -v ab="$ab" 'BEGIN {
  printf "median: plain parse %d ms, crossguard analyze %d ms: %.2fx\n", pm, am, am / pm
  printf "best:   plain parse %d ms, crossguard analyze %d ms: %.2fx\n", pb, ab, ab / pb
}'
