#!/usr/bin/env bash
# ebs-download of a synthetic snapshot from ebs-emulator, against the service's ceiling:
#   1. with the default quotas (1,000 GetSnapshotBlock/s per snapshot) and LATENCY ms added to
#      every request: blocks/s beside the 1,000/s ceiling (goal: 95 %), throttles answered,
#      failed blocks, CPU seconds per GiB and peak RSS of the composition's processes;
#   2. with quotas off and no latency, beside the emulator's own capacity on the same snapshot,
#      measured just before with the raw-socket load generator (bench/lib/ebs-load.js).
# The snapshot is SIZE GiB of the FSP pattern "every" (every block listed, every block
# different): its blocks cost the emulator little to make, so the emulator, which shares this
# machine's cores with the download, takes as little as possible from it.
# Usage: bash bench/ebs-download.sh [SIZE_GIB] [LATENCY_MS]   (default 4 20; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-4}
latency=${2:-20}
snapshot=snap-0000000000000d0d1
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
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
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

start_emulator() { # FLAGS...
  stop_emulator
  bin/ebs-emulator --seed 1 --synthetic "id=$snapshot,size=$size,pattern=every" "$@" > "$work/endpoint" 2> "$work/emulator.stderr" &
  server=$!
  for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
  url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$work/endpoint")
  [ -n "$url" ] || { echo "ebs-emulator did not start:" >&2; cat "$work/emulator.stderr" >&2; exit 1; }
  server=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$work/endpoint")
}

# Runs ebs-download into $work/disk.img; prints "SECONDS CPU_SECONDS MAX_RSS_KIB".
download() {
  rm -f "$work/disk.img"
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S %M' -o "$work/time" bin/ebs-download --endpoint-url "$url" "$snapshot" "$work/disk.img" 2> "$work/download.stderr" ||
    { echo "ebs-download failed:" >&2; cat "$work/download.stderr" >&2; exit 1; }
  t1=$(date +%s.%N)
  read -r user sys rss < "$work/time"
  echo "$(echo "$t1 - $t0" | bc) $(echo "$user + $sys" | bc) $rss"
}

stats() { curl -s "$url/_emulator/stats"; }

blocks=$((size * 2048))
echo "ebs-download benchmark: $size GiB ($blocks blocks), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

start_emulator --latency "$latency"
read -r secs cpu rss < <(download)
[ "$(stat -c %s "$work/disk.img")" -eq $((size << 30)) ] || { echo "disk.img has the wrong size" >&2; exit 1; }
node -e '
  const [secs, cpu, rss, blocks, size, latency] = process.argv.slice(1, 7).map(Number);
  const s = JSON.parse(process.argv[7]);
  const rate = blocks / secs;
  const gets = s.requests.GetSnapshotBlock ?? 0;
  console.log(`  default quotas, ${latency} ms latency: ${secs.toFixed(2)} s, ${rate.toFixed(0)} blocks/s (${(rate / 2).toFixed(0)} MiB/s), ${(rate / 1000).toFixed(3)}x the 1,000/s ceiling (goal 0.95x)`);
  console.log(`    GetSnapshotBlock requests ${gets} for ${blocks} blocks, throttled ${JSON.stringify(s.throttled)}, CPU ${(cpu / size).toFixed(2)} s per GiB, peak RSS of one process ${(rss / 1024).toFixed(0)} MiB`);
' "$secs" "$cpu" "$rss" "$blocks" "$size" "$latency" "$(stats)"

start_emulator --no-quotas
capacity=$(node bench/lib/ebs-load.js get "$url" "$server" "$snapshot" 5 64)
start_emulator --no-quotas
read -r secs cpu rss < <(download)
node -e '
  const [secs, cpu, rss, blocks, size] = process.argv.slice(1, 6).map(Number);
  const cap = JSON.parse(process.argv[6]);
  const rate = blocks / secs;
  console.log(`  quotas off, no latency: ${secs.toFixed(2)} s, ${rate.toFixed(0)} blocks/s (${(rate / 2).toFixed(0)} MiB/s), CPU ${(cpu / size).toFixed(2)} s per GiB, peak RSS of one process ${(rss / 1024).toFixed(0)} MiB`);
  console.log(`    emulator capacity on this snapshot (ebs-load, 64 connections, 5 s): ${cap.perSecond.toFixed(0)} blocks/s; ebs-download reaches ${(rate / cap.perSecond).toFixed(2)}x of it`);
' "$secs" "$cpu" "$rss" "$blocks" "$size" "$capacity"
