#!/usr/bin/env bash
# The stream codec on the hot path of every pipeline: a manifest of 1 M block records through
# `strip` (decode, pass through, encode, trailer recomputed), against `jq -c .` on the same file.
# `strip` passes lines on as read, checked but not built into objects; `progress -q` shows the
# cost of a stage that builds every record and serializes it again.
# Prints the records/s of each (medians of 3 runs), per wall-clock and per CPU second, and the
# ratios to jq, all measured in the same run; then the CPU time of the codec's parts in one
# process (bench/lib/codec-parts.js).
# Usage: bash bench/codec.sh [RECORDS]   (default 1000000; build first with `npx tsc -p .`)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
runs=3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
manifest=$work/blocks.ndjson

node bench/lib/block-manifest.js "$records" > "$manifest"
lines=$(wc -l < "$manifest")
echo "codec: $lines lines, $(( $(wc -c < "$manifest") >> 20 )) MiB of block records; median of $runs runs"
# The output must be the input, byte for byte, or the timing means nothing.
cmp -s <(bin/strip < "$manifest") "$manifest" || { echo "codec: strip did not reproduce its input" >&2; exit 1; }
cmp -s <(bin/progress -q < "$manifest" 2> /dev/null) "$manifest" || { echo "codec: progress -q did not reproduce its input" >&2; exit 1; }

# "WALL CPU": medians over $runs runs of a command reading the manifest on stdin, in seconds of
# wall clock and of CPU (user + system). CPU time says more on a machine busy with other work.
TIMEFORMAT='%R %U %S'
measure() {
  local times
  times=$(for ((i = 0; i < runs; i++)); do { time "$@" < "$manifest" > /dev/null 2> /dev/null; } 2>&1; done)
  local wall cpu
  wall=$(awk '{ print $1 }' <<< "$times" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  cpu=$(awk '{ printf "%.3f\n", $2 + $3 }' <<< "$times" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  echo "$wall $cpu"
}
report() {
  awk -v name="$1" -v wall="$2" -v cpu="$3" -v n="$lines" \
    'BEGIN { printf "  %-11s %6.2f s %9.0f records/s   (CPU %5.2f s, %9.0f records per CPU second)\n", name, wall, n / wall, cpu, n / cpu }'
}

read -r strip_wall strip_cpu < <(measure bin/strip)
report strip "$strip_wall" "$strip_cpu"
read -r parse_wall parse_cpu < <(measure bin/progress -q)
report 'progress -q' "$parse_wall" "$parse_cpu"
if command -v jq > /dev/null; then
  read -r jq_wall jq_cpu < <(measure jq -c .)
  report 'jq -c .' "$jq_wall" "$jq_cpu"
  ratio() {
    awk -v name="$1" -v jw="$jq_wall" -v sw="$2" -v jc="$jq_cpu" -v sc="$3" \
      'BEGIN { printf "  %s: %.2fx the records/s of jq -c . (%.2fx per CPU second)\n", name, jw / sw, jc / sc }'
  }
  ratio strip "$strip_wall" "$strip_cpu"
  ratio 'progress -q' "$parse_wall" "$parse_cpu"
else
  echo "  jq -c .  not installed: no comparison"
fi
node bench/lib/codec-parts.js "$manifest"
