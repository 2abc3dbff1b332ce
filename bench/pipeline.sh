#!/usr/bin/env bash
# A volume into a store, against the zstd CLI doing the compression alone:
#   file-blocks IMG | zstd-chunk | s3-put DIR     vs     zstd -1 -T0 < IMG > OUT
# on a 2 GiB image (a third random, a third text-like, a third zeros written as data), run in
# turns, median of 3 each; prints both throughputs (MiB/s of image) and the ratio (goal 0.8).
# The store is written durably (every object flushed to disk); zstd's OUT is not flushed.
# Then peak RSS per process (goal < 200 MiB, flat in size): upload and restore of the mixed
# image and of as large an image of random bytes (dense and incompressible: the most memory),
# and the upload of 1 GiB and 16 GiB sparse images.
# Usage: bash bench/pipeline.sh [GiB]   (default 2; needs `npx tsc -p .` first, zstd, GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=$PWD/bin:$PATH
gib=${1:-2}
runs=3
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
for tool in zstd /usr/bin/time bc; do
  command -v "$tool" > /dev/null || { echo "pipeline: $tool is needed (apt-get install -y zstd time bc)" >&2; exit 1; }
done

img=$work/mixed.img
node bench/lib/mixed-image.js "$img" $((gib << 30))
size=$(stat -c %s "$img")
cat "$img" > /dev/null # into the page cache: both sides read it from memory
echo "pipeline: ${gib} GiB image (random / text / zeros), $(nproc) CPUs, $(node -v), zstd $(zstd -V | grep -o 'v[0-9.]*'), median of $runs"

# Runs a shell command once; prints its wall-clock seconds and saves its CPU seconds (user +
# system, of every process of the pipeline) in $work/cpu.
seconds() {
  /usr/bin/time -f '%e %U %S' -o "$work/time" bash -o pipefail -c "$1"
  read -r wall user sys < "$work/time"
  echo "$user + $sys" | bc > "$work/cpu"
  echo "$wall"
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
mibps() { echo "$size / 1048576 / $1" | bc -l; }

declare -A cmd=(
  [zstd]="zstd -1 -T0 -q < $img > $work/out.zst"
  [sluice]="file-blocks $img | zstd-chunk | s3-put $work/store > /dev/null"
  [sluice-null]="file-blocks $img | zstd-chunk > /dev/null"
  [sluice-noverify]="file-blocks $img | zstd-chunk --no-verify | s3-put $work/store > /dev/null"
)
order=(zstd sluice sluice-null sluice-noverify)
declare -A times cpus
for ((i = 0; i < runs; i++)); do
  for name in "${order[@]}"; do
    rm -rf "$work/store" "$work/out.zst" # outside the timing
    times[$name]+="$(seconds "${cmd[$name]}") "
    cpus[$name]+="$(cat "$work/cpu") "
  done
done
declare -A med cpu
for name in "${order[@]}"; do
  # shellcheck disable=SC2086
  med[$name]=$(median ${times[$name]})
  # shellcheck disable=SC2086
  cpu[$name]=$(median ${cpus[$name]})
done
rm -rf "$work/store" "$work/out.zst"

line() { # label name
  printf '  %-52s %6.2f s %7.1f MiB/s  %5.2fx zstd  CPU %5.1f s\n' "$1" "${med[$2]}" "$(mibps "${med[$2]}")" "$(echo "${med[zstd]} / ${med[$2]}" | bc -l)" "${cpu[$2]}"
}
line "zstd -1 -T0 < IMG > OUT" zstd
line "file-blocks IMG | zstd-chunk | s3-put DIR" sluice
line "file-blocks IMG | zstd-chunk > /dev/null" sluice-null
line "file-blocks IMG | zstd-chunk --no-verify | s3-put DIR" sluice-noverify
echo "  (runs, s: $(for name in "${order[@]}"; do printf '%s: %s; ' "$name" "${times[$name]% }"; done))"

# Peak RSS of each process of a pipeline, in MiB: "name MiB   name MiB ...".
mib() { echo $(($(cat "$work/rss.$1") / 1024)); }
rss() { # label image
  local label=$1 image=$2
  rm -rf "$work/store"
  /usr/bin/time -f %M -o "$work/rss.fb" file-blocks "$image" |
    /usr/bin/time -f %M -o "$work/rss.chunk" zstd-chunk |
    /usr/bin/time -f %M -o "$work/rss.put" s3-put "$work/store" > /dev/null
  printf '  %-30s file-blocks %4d MiB   zstd-chunk %4d MiB   s3-put %4d MiB\n' "$label" "$(mib fb)" "$(mib chunk)" "$(mib put)"
}
restore_rss() { # label
  /usr/bin/time -f %M -o "$work/rss.list" s3-list "$work/store" |
    /usr/bin/time -f %M -o "$work/rss.get" s3-get |
    /usr/bin/time -f %M -o "$work/rss.unchunk" zstd-unchunk |
    /usr/bin/time -f %M -o "$work/rss.fw" file-write "$work/restored.img" > /dev/null
  rm -f "$work/restored.img"
  printf '  %-30s s3-list %4d MiB   s3-get %4d MiB   zstd-unchunk %4d MiB   file-write %4d MiB\n' "$1" "$(mib list)" "$(mib get)" "$(mib unchunk)" "$(mib fw)"
}

echo "peak RSS per process:"
rss "${gib} GiB mixed image" "$img"
restore_rss "  restored"
rm -f "$img"
head -c $((gib << 30)) /dev/urandom > "$work/random.img"
rss "${gib} GiB of random bytes" "$work/random.img"
restore_rss "  restored"
rm -f "$work/random.img"
# Sparse images with the same 256 MiB of data (random and text pieces of 8 MiB, spread out),
# the rest holes: memory must not grow with the size of the volume.
node bench/lib/mixed-image.js "$work/piece" $((24 << 20))
for g in 1 16; do
  sparse=$work/sparse-$g.img
  truncate -s "${g}G" "$sparse"
  step=$((g * 1024 / 32))
  for ((i = 0; i < 32; i++)); do
    dd if="$work/piece" of="$sparse" bs=1M count=8 skip=$(((i % 2) * 8)) seek=$((i * step)) conv=notrunc status=none
  done
  rss "$g GiB sparse, $(du -m "$sparse" | cut -f1) MiB data" "$sparse"
  rm -f "$sparse"
done
