#!/usr/bin/env bash
# Peak RSS of each process of `ebs-blocks B | delta --parent A | count` over a synthetic
# snapshot B of SIZE GiB (default 16384, 16 TiB: 33,554,432 blocks, every one listed) whose
# parent A is as large; B rewrote a tenth of A's blocks, so delta keeps about 3.4 million.
# Memory must stay flat in the volume's size: run it at 128 and 16384 and compare.
# Usage: bash bench/ebs-list-rss.sh [SIZE_GIB]   (build first)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-16384}
parent=snap-000000000000a0001
child=snap-000000000000b0001
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

bin/ebs-emulator --no-quotas --seed 1 --synthetic "id=$parent,size=$size,pattern=every2nd" \
  --synthetic "id=$child,size=$size,pattern=every4th,sparse=0.9,parent=$parent" > "$work/endpoint" 2> "$work/emulator.stderr" &
server=$!
for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$work/endpoint")
[ -n "$url" ] || { echo "ebs-emulator did not start:" >&2; cat "$work/emulator.stderr" >&2; exit 1; }
server=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$work/endpoint")

echo "ebs-blocks | delta | count on $size GiB ($((size * 2048)) blocks), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s)
/usr/bin/time -f '%e %U %S %M' -o "$work/t.blocks" bin/ebs-blocks --endpoint-url "$url" "$child" |
  /usr/bin/time -f '%e %U %S %M' -o "$work/t.delta" bin/delta --endpoint-url "$url" --parent "$parent" |
  /usr/bin/time -f '%e %U %S %M' -o "$work/t.count" bin/count > "$work/count.json"
echo "  $(($(date +%s) - t0)) s; count: $(cat "$work/count.json")"
for stage in blocks delta count; do
  read -r wall user sys rss < "$work/t.$stage"
  printf '  %-11s peak RSS %4d MiB, CPU %6.1f s\n' "$stage" $((rss / 1024)) "$(echo "$user + $sys" | bc)"
done
printf '  %-11s peak RSS %4d MiB\n' ebs-emulator $(($(awk '/^VmHWM/ {print $2}' "/proc/$server/status") / 1024))
