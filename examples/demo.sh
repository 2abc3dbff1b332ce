#!/usr/bin/env bash
# A disk image into a local object store as zstd chunks, and back, verified identical; then
# the same image through EBS snapshots: uploaded, archived from the snapshot into the store,
# restored into a new snapshot and downloaded, verified identical.
# No AWS account needed: the store is a directory, and EBS is ebs-emulator on 127.0.0.1.
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

# The id in the "snapshot" record of a journal whose status is completed.
completed_id() {
  node -e 'for (const l of require("fs").readFileSync(0, "utf8").split("\n")) { if (!l) continue; const r = JSON.parse(l); if (r.type === "snapshot" && r.status === "completed") console.log(r.snapshotId); }'
}

echo "== ebs-emulator on 127.0.0.1 (the EBS direct APIs, in memory)"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
ebs-emulator --port 0 > "$work/emulator.json" 2> "$work/emulator.log" &
emulator=$!
trap 'kill "$emulator" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/emulator.json" ] && break; sleep 0.1; done
AWS_ENDPOINT_URL_EBS=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$work/emulator.json")
export AWS_ENDPOINT_URL_EBS AWS_ENDPOINT_URL_EC2=$AWS_ENDPOINT_URL_EBS
echo "   $AWS_ENDPOINT_URL_EBS"

echo "== ebs-upload disk.img (file-blocks | ebs-put)"
snapshot=$(ebs-upload "$work/disk.img" | completed_id)
ebs-size --human "$snapshot"

echo "== ebs-movetos3 $snapshot $work/archive (ebs-blocks | ebs-get | zstd-chunk | s3-put)"
ebs-movetos3 "$snapshot" "$work/archive" > "$work/archive.journal"

echo "== ebs-getfroms3 $work/archive --to-snapshot (s3-list | s3-get | zstd-unchunk | ebs-put)"
restored=$(ebs-getfroms3 "$work/archive" --to-snapshot | completed_id)

echo "== ebs-download $restored downloaded.img (ebs-blocks | ebs-get | file-write)"
ebs-download "$restored" "$work/downloaded.img"
cmp -n "$(stat -c %s "$work/disk.img")" "$work/disk.img" "$work/downloaded.img"
echo "   identical: disk.img -> $snapshot -> archive -> $restored -> downloaded.img"
