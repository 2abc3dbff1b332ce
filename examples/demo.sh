#!/usr/bin/env bash
# A disk image into a local object store as zstd chunks, and back, verified identical.
# No AWS account needed: the store is a directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH="$here/../bin:$PATH"
work=${1:-$(mktemp -d)}
mkdir -p "$work"

echo "== making a 64 MiB patterned disk image in $work/disk.img"
node "$here/make-image.js" "$work/disk.img" 64

echo "== file-blocks disk.img | zstd-chunk | s3-put $work/store"
file-blocks "$work/disk.img" | zstd-chunk | s3-put "$work/store" > "$work/put.journal"
echo "   $(grep -c '"type":"object"' "$work/put.journal") objects written; the store holds $(du -sh "$work/store" | cut -f1)"

echo "== s3-list $work/store | s3-get | zstd-unchunk | file-write restored.img"
rm -f "$work/restored.img"
s3-list "$work/store" | s3-get | zstd-unchunk | file-write "$work/restored.img"

echo "== comparing"
cmp "$work/disk.img" "$work/restored.img"
echo "   identical: $(stat -c %s "$work/restored.img") bytes"
echo "== what the image holds"
file-blocks "$work/disk.img" | count --human
