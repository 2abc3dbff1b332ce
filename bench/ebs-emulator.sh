#!/usr/bin/env bash
# ebs-emulator throughput with quotas off and no latency: GetSnapshotBlock of 512 KiB blocks from
# a synthetic snapshot of random data, then PutSnapshotBlock with checksum validation into a
# pending snapshot, each from CONCURRENCY raw HTTP keep-alive connections for SECONDS
# (bench/lib/ebs-load.js). Prints req/s and MiB/s beside the goals (1,500 and 1,000 req/s), the
# ratio, and the CPU seconds of server and client (both run on this machine).
# Usage: bash bench/ebs-emulator.sh [SECONDS] [CONCURRENCY]   (default 10 64; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
concurrency=${2:-64}
snapshot=snap-0000000000000be9c
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 8 GiB = 16,384 blocks of seeded random data, computed on demand.
bin/ebs-emulator --no-quotas --seed 1 --synthetic "id=$snapshot,size=8,pattern=random,seed=1" > "$work/endpoint" 2> "$work/stderr" &
server=$!
for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$work/endpoint")
[ -n "$url" ] || { echo "ebs-emulator did not start:" >&2; cat "$work/stderr" >&2; exit 1; }
echo "ebs-emulator: $url (pid $server), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $seconds s per operation, $concurrency connections"

report() { # JSON-LINE GOAL
  node -e '
    const r = JSON.parse(process.argv[1]);
    const goal = Number(process.argv[2]);
    console.log(`  ${r.op.padEnd(16)} ${r.perSecond.toFixed(0).padStart(6)} req/s ${r.mibPerSecond.toFixed(0).padStart(6)} MiB/s` +
      `   goal ${goal} req/s: ${(r.perSecond / goal).toFixed(2)}x` +
      `   (${r.requests} in ${r.seconds} s, ${r.errors} errors)`);
    console.log(`  ${"".padEnd(16)} CPU seconds: server ${r.serverCpuSeconds}, client ${r.clientCpuSeconds};` +
      ` ${(r.requests / r.serverCpuSeconds).toFixed(0)} req per server CPU second, ${(r.requests / (r.serverCpuSeconds + r.clientCpuSeconds)).toFixed(0)} per CPU second of both`);
    if (r.errors) console.log(`  first errors: ${r.firstErrors.join(", ")}`);
  ' "$1" "$2"
}

get=$(node bench/lib/ebs-load.js get "$url" "$server" "$snapshot" "$seconds" "$concurrency")
report "$get" 1500
# Puts cycle over the 4,096 blocks of a 2 GiB snapshot: the in-memory store holds at most 2 GiB.
put=$(node bench/lib/ebs-load.js put "$url" "$server" 2 "$seconds" "$concurrency")
report "$put" 1000
