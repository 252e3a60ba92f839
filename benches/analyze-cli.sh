#!/usr/bin/env bash
# The analysis time goal timed between processes (`make bench-cli`; BENCHMARKS.md
# "Analysis"): `crossguard analyze` on a dump file against a plain parse of the same file
# (examples/parse-baseline.rs), each a fresh process, run alternately ROUNDS times so
# that both meet the same machine. Prints each run's wall time, and the ratio of the
# medians and of the best runs. `cargo bench --bench analysis` times the same comparison
# inside one process, where the plain parse reuses memory an earlier round freed.
#
#   benches/analyze-cli.sh [NODES [PODS [SEED [ROUNDS]]]]   (default 5000 150000 1 7)
#
# Needs `crossguard` and the examples `synthetic-dump` and `parse-baseline` built in
# $CARGO_TARGET_DIR/release (default ~/.cache/crossguard-target, as in the Makefile):
# `make bench-cli` builds them with the bench profile (release settings; the AWS SDK
# crates at opt-level 0, which `analyze` never calls). CROSSGUARD=/path/to/crossguard
# times another build. The dump is written to $TMPDIR (default /tmp) and reused by later
# runs until synthetic-dump is rebuilt.
set -euo pipefail

usage() {
  sed -n '9p' "$0" | sed 's/^# *//'
  echo "NODES, PODS, SEED and ROUNDS are whole numbers; ROUNDS at least 1."
}
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  usage
  exit 0
fi
nodes=${1:-5000}
pods=${2:-150000}
seed=${3:-1}
rounds=${4:-7}
for n in "$nodes" "$pods" "$seed" "$rounds"; do
  if [[ ! $n =~ ^[0-9]+$ ]]; then
    echo "not a whole number: $n" >&2
    usage >&2
    exit 2
  fi
done
if ((rounds < 1)); then
  echo "ROUNDS must be at least 1" >&2
  exit 2
fi

target=${CARGO_TARGET_DIR:-$HOME/.cache/crossguard-target}/release
crossguard=${CROSSGUARD:-$target/crossguard}
generator=$target/examples/synthetic-dump
baseline=$target/examples/parse-baseline
for exe in "$crossguard" "$generator" "$baseline"; do
  if [[ ! -x $exe ]]; then
    echo "missing $exe: build it with \`make bench-cli\` (or set CARGO_TARGET_DIR / CROSSGUARD)" >&2
    exit 2
  fi
done

tmp=${TMPDIR:-/tmp}
dump="$tmp/crossguard-dump-$nodes-$pods-$seed.json"
log=$(mktemp "$tmp/crossguard-bench-cli.XXXXXX")
trap 'rm -f "$dump.tmp" "$log"' EXIT
# A dump older than the generator may come from another version of it: write it again.
if [[ ! -s $dump || $generator -nt $dump ]]; then
  "$generator" "$nodes" "$pods" "$seed" >"$dump.tmp"
  mv "$dump.tmp" "$dump"
fi

# Wall time of one run in milliseconds; stdout is discarded, stderr kept in $log and
# shown if the command fails.
wall_ms() {
  local start end
  start=$(date +%s%N)
  if ! "$@" >/dev/null 2>"$log"; then
    echo "failed: $*" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}

# The median of the numbers on stdin (the mean of the two middle ones for an even count).
median() {
  sort -n | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); print (NR % 2 ? v[m] : (v[m] + v[m + 1]) / 2) }'
}
best() { sort -n | head -1; }

# One untimed run, which also brings the dump into the page cache: it must print a report.
if ! "$crossguard" analyze --snapshot "$dump" 2>"$log" | grep -q '^crossguard savings analysis'; then
  echo "$crossguard analyze printed no report for $dump:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi

plain=() analyze=()
echo "crossguard: $crossguard"
echo "dump: $dump ($(stat -c %s "$dump") bytes); rounds: $rounds, alternating"
for ((r = 1; r <= rounds; r++)); do
  p=$(wall_ms "$baseline" "$dump")
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
