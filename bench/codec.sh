#!/usr/bin/env bash
# The stream codec on the hot path of every pipeline: a manifest of 1 M block records through
# `strip` (decode, pass through, encode, trailer recomputed), against `jq -c .` on the same file.
# Prints the records/s of both (median of 3 runs each) and their ratio.
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

# Wall-clock seconds of the median of $runs runs of a command reading the manifest on stdin.
median_seconds() {
  for ((i = 0; i < runs; i++)); do
    local start=$EPOCHREALTIME
    "$@" < "$manifest" > /dev/null
    awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }'
  done | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}
rate() { awk -v n="$lines" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }

strip_s=$(median_seconds bin/strip)
printf '  strip     %7.2f s  %9d records/s\n' "$strip_s" "$(rate "$strip_s")"
if command -v jq > /dev/null; then
  jq_s=$(median_seconds jq -c .)
  printf '  jq -c .   %7.2f s  %9d records/s\n' "$jq_s" "$(rate "$jq_s")"
  awk -v j="$jq_s" -v s="$strip_s" 'BEGIN { printf "  strip: %.2fx the records/s of jq -c .\n", j / s }'
else
  echo "  jq -c .   not installed: no comparison"
fi
