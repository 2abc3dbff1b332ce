#!/usr/bin/env bash
# ebs-emulator throughput with quotas off and no latency, each from CONCURRENCY raw HTTP
# keep-alive connections for SECONDS (bench/lib/ebs-load.js):
#   GetSnapshotBlock of 512 KiB blocks from a 32 GiB synthetic snapshot of seeded random data,
#   and from one of the FSP pattern "every" (every sector stamped), each block read once;
#   PutSnapshotBlock with checksum validation into a pending 2 GiB snapshot, blocks kept in
#   memory, and with --state DIR (blocks written to a file);
# then throttling with the default quotas: 3,000 GetSnapshotBlock requests at once, the accepted
# rate beside the 1,000/s per-snapshot quota.
# Prints req/s and MiB/s beside the goals (1,500 and 1,000 req/s), the ratio, and the CPU
# seconds of server and client (both run on this machine).
# Usage: bash bench/ebs-emulator.sh [SECONDS] [CONCURRENCY]   (default 10 64; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
concurrency=${2:-64}
random=snap-0000000000000be9c
pattern=snap-0000000000000e7e4
work=$(mktemp -d)
server=
url=
stop_emulator() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=
}
cleanup() {
  stop_emulator
  rm -rf "$work"
}
trap cleanup EXIT

start_emulator() { # FLAGS...
  stop_emulator
  bin/ebs-emulator --seed 1 "$@" > "$work/endpoint" 2> "$work/stderr" &
  server=$!
  for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
  url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$work/endpoint")
  [ -n "$url" ] || { echo "ebs-emulator did not start:" >&2; cat "$work/stderr" >&2; exit 1; }
  server=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$work/endpoint")
}

report() { # LABEL JSON-LINE GOAL
  node -e '
    const r = JSON.parse(process.argv[2]);
    const goal = Number(process.argv[3]);
    console.log(`  ${process.argv[1].padEnd(26)} ${r.perSecond.toFixed(0).padStart(6)} req/s ${r.mibPerSecond.toFixed(0).padStart(5)} MiB/s` +
      `   goal ${goal}: ${(r.perSecond / goal).toFixed(2)}x   (${r.requests} in ${r.seconds} s, ${r.errors} errors)`);
    console.log(`  ${"".padEnd(26)} CPU seconds: server ${r.serverCpuSeconds}, client ${r.clientCpuSeconds};` +
      ` ${(r.requests / r.serverCpuSeconds).toFixed(0)} req per server CPU second, ${(r.requests / (r.serverCpuSeconds + r.clientCpuSeconds)).toFixed(0)} per CPU second of both`);
    if (r.errors) console.log(`  first errors: ${r.firstErrors.join(", ")}`);
  ' "$1" "$2" "$3"
}

echo "ebs-emulator benchmark: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $seconds s per run, $concurrency connections"
# 32 GiB = 65,536 blocks each, computed on demand: within SECONDS no block is read twice, so
# every read makes and hashes its block (a re-read would find its checksum cached).
start_emulator --no-quotas --synthetic "id=$random,size=32,pattern=random,seed=1" --synthetic "id=$pattern,size=32,pattern=every"
report "GetSnapshotBlock random" "$(node bench/lib/ebs-load.js get "$url" "$server" "$random" "$seconds" "$concurrency")" 1500
report "GetSnapshotBlock pattern" "$(node bench/lib/ebs-load.js get "$url" "$server" "$pattern" "$seconds" "$concurrency")" 1500
# Puts cycle over the 4,096 blocks of a 2 GiB snapshot: the in-memory store holds at most 2 GiB.
start_emulator --no-quotas
report "PutSnapshotBlock memory" "$(node bench/lib/ebs-load.js put "$url" "$server" 2 "$seconds" "$concurrency")" 1000
start_emulator --no-quotas --state "$work/state"
report "PutSnapshotBlock --state" "$(node bench/lib/ebs-load.js put "$url" "$server" 2 "$seconds" "$concurrency")" 1000
rm -rf "$work/state"

start_emulator --synthetic "id=$pattern,size=8,pattern=every"
node -e '
  const r = JSON.parse(process.argv[1]);
  const answers = Object.entries(r.answers).map(([k, v]) => `${v} x ${k}`).join(", ");
  console.log(`  throttling, default quotas: ${r.requests} GetSnapshotBlock at once from ${r.concurrency} connections in ${r.seconds} s: ${answers}`);
  console.log(`  accepted ${r.accepted} in ${r.acceptedSeconds} s = ${r.acceptedPerSecond}/s, ${(r.acceptedPerSecond / 1000).toFixed(3)}x the 1,000/s quota (its bucket allows a burst of 100 on top)`);
' "$(node bench/lib/ebs-load.js flood "$url" "$server" "$pattern" 3000 "$concurrency")"
