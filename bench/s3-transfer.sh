#!/usr/bin/env bash
# S3 transfers, sluice beside aws-cli v2 (/usr/bin/aws) and rclone, against one moto S3 server:
#   1. upload of a folder of 8 MiB files      s3-list DIR | s3-get | s3-put s3://B/P; s3-list DIR
#                                             | s3-copy --to s3://B/P (one process)
#                                             aws s3 cp --recursive; rclone copy
#   2. upload of one large file               s3-list DIR | s3-get --pieces-above 64M | s3-put
#                                             s3://B/P (one object, in 8 MiB pieces/parts);
#                                             s3-list DIR | s3-copy --to s3://B/P
#                                             aws s3 cp FILE; rclone copy
#   3. download of both                       s3-list s3://B/P | s3-get | s3-put DIR (3b: aws's
#                                             object, in pieces), durable and with --no-fsync
#                                             (which the peers' writes are like); s3-list |
#                                             s3-copy --to DIR (one process), durable and
#                                             --no-fsync; aws; rclone
#   4. a stream on stdin                      cat FILE | stream-chunk | s3-put; aws s3 cp -;
#                                             rclone rcat
# then the server's own ceiling (plain parallel PUTs and GETs, bench/lib/s3-load.js), and all
# of it again against a discarding endpoint (bench/lib/s3-sink.js) that costs almost nothing,
# to show how fast each client goes when the server is not the limit.
# Each case prints seconds, MiB/s, the peak RSS of the largest process and sluice's speed over
# the peer's (>1: sluice faster). Every transfer is checked (object count and sizes on the
# server; SHA-256 of every downloaded file) before its time is reported.
# Settings, all defaults: aws 10 requests at once, 8 MiB parts above 8 MiB (written into its
# config file here); rclone --transfers 4, --s3-upload-concurrency 4, 5 MiB chunks above
# 200 MiB, with --s3-no-head (moto) and path style; sluice -j 8 objects, 4 parts of an object.
# Usage: bash bench/s3-transfer.sh [MiB]   (default 2048, a multiple of 8; build first; needs
#        moto_server, /usr/bin/aws, rclone, GNU time: apt-get install -y awscli rclone time)
#        SLUICE_BIN=DIR runs the commands of another build (a checkout's bin/) instead of this one.
# Scratch: the source (MiB), one download and moto's spooled objects, about 3x MiB at most.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=${SLUICE_BIN:-$PWD/bin}:$PATH
mib=${1:-2048}
(( mib >= 8 && mib % 8 == 0 )) || { echo "s3-transfer: the size must be a multiple of 8 MiB, got $mib" >&2; exit 2; }
objects=$((mib / 8))
total=$((mib << 20))
for tool in moto_server /usr/bin/aws rclone /usr/bin/time jq bc curl; do
  command -v "$tool" > /dev/null || { echo "s3-transfer: $tool is needed (moto: pip install \"moto[server]\"; apt-get install -y awscli rclone time jq bc curl)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-s3bench-XXXXXX")
server=
server_kind=
stop_server() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=
}
trap 'stop_server; rm -rf "$work"' EXIT

# Dummy credentials, no profile, and the peers' defaults written down rather than taken from
# whatever config this machine has.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=/dev/null
cat > "$AWS_CONFIG_FILE" << 'EOF'
[default]
s3 =
  max_concurrent_requests = 10
  multipart_threshold = 8MB
  multipart_chunksize = 8MB
EOF
export RCLONE_CONFIG_X_TYPE=s3 RCLONE_CONFIG_X_PROVIDER=Other RCLONE_CONFIG_X_REGION=us-east-1 \
  RCLONE_CONFIG_X_ACCESS_KEY_ID=bench RCLONE_CONFIG_X_SECRET_ACCESS_KEY=bench RCLONE_CONFIG_X_FORCE_PATH_STYLE=true
bucket=bench

start_moto() {
  stop_server
  # moto spools objects over 5 MiB to temporary files: keep them in the scratch folder.
  mkdir -p "$work/moto-tmp"
  TMPDIR=$work/moto-tmp moto_server -H 127.0.0.1 -p "$port" > "$work/server.log" 2>&1 &
  server=$!
  server_kind=moto
  wait_up
}
start_sink() {
  stop_server
  node bench/lib/s3-sink.js "$port" > "$work/server.log" 2>&1 &
  server=$!
  server_kind=sink
  wait_up
}
wait_up() {
  for _ in $(seq 100); do curl -s -o /dev/null "$url/" && break; sleep 0.1; done
  curl -s -o /dev/null "$url/" || { echo "s3-transfer: the $server_kind server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
  curl -sf -X PUT -o /dev/null "$url/$bucket"
}
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
url=http://127.0.0.1:$port
export RCLONE_CONFIG_X_ENDPOINT=$url

server_rss() { awk '/VmHWM/ { printf "%d MiB peak", $2 / 1024 } /VmRSS/ { printf ", %d MiB now", $2 / 1024 }' "/proc/$server/status"; }

# The objects under a prefix, as "COUNT BYTES" (from the server's own listing).
listed() { s3-list --endpoint-url "$url" "s3://$bucket/$1" | jq -rs '[.[] | select(.type == "object")] | "\(length) \(map(.size) | add // 0)"'; }
# A stream layout under a prefix: its parts hold the whole size, its manifest says so too.
expect_stream() { # PREFIX
  s3-list --endpoint-url "$url" "s3://$bucket/$1" | jq -es --argjson n "$objects" --argjson b "$total" '
    [.[] | select(.type == "object")] as $o | ($o | map(select(.key | test("/[0-9]+$")))) as $parts
    | ($parts | length) == $n and ($parts | map(.size) | add) == $b and ($o | map(.key) | any(endswith("/stream.json")))' > /dev/null ||
    { echo "s3-transfer: s3://$bucket/$1 does not hold the stream's $objects parts and manifest" >&2; exit 1; }
}
expect_listed() { # PREFIX COUNT BYTES
  local got
  got=$(listed "$1")
  [ "$got" = "$2 $3" ] || { echo "s3-transfer: s3://$bucket/$1 holds $got (objects bytes), expected $2 $3" >&2; exit 1; }
}
remove() { s3-list --endpoint-url "$url" "s3://$bucket/$1" | s3-delete --endpoint-url "$url" "s3://$bucket/$1" > /dev/null; }
# SHA-256 of every file under DIR but the local store's own files (%.meta.*), by name.
sums() { (cd "$1" && find . -type f ! -name '%.*' -printf '%P\n' | sort | xargs -r sha256sum); }

declare -A secs rss
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Runs a shell command as one case; records its seconds and the peak RSS of its largest process.
measure() { # ID COMMAND
  if ! /usr/bin/time -f '%e %M' -o "$work/time" bash -o pipefail -c "$2" > "$work/out" 2> "$work/err"; then
    echo "s3-transfer: $1 failed: $2" >&2
    tail -5 "$work/err" >&2
    exit 1
  fi
  read -r secs[$1] rss[$1] < "$work/time"
}
row() { # LABEL ID [SLUICE-ID...]   (ratios to each sluice run, joined by " / ")
  local s=${secs[$2]}
  local ratio='' id
  for id in "${@:3}"; do
    ratio+="${ratio:+ / }$(printf '%.2fx' "$(echo "$s / ${secs[$id]}" | bc -l)")"
  done
  printf '  %-58s %7.2f s %7.1f MiB/s %6d MiB  %s\n' "$1" "$s" "$(echo "$mib / $s" | bc -l)" $((rss[$2] / 1024)) "$ratio"
}
ceiling() { # put|get PREFIX
  node bench/lib/s3-load.js "$1" "$url" "$bucket" "$2" "$objects" $((8 << 20)) 8 | jq -r --argjson mib "$mib" '"\(.seconds) \($mib / .seconds)"'
}

echo "s3-transfer: $mib MiB ($objects objects of 8 MiB, or one file), $(nproc) CPUs, load average $load_before"
echo "  $(node -v), $(/usr/bin/aws --version 2>&1 | cut -d' ' -f1), $(rclone version | head -1), moto $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')"
echo "  (s, MiB/s, peak RSS of the largest process, sluice's speed over the peer's: >1 sluice is faster)"

src=$work/src
dl=$work/dl
big=$work/big.bin

# One round of every case against the server at $url; SPARSE=1 makes the data zeros (the sink
# keeps no data and serves zeros back).
round() {
  local sparse=$1 i
  rm -rf "$src" "$big"
  mkdir -p "$src"
  for ((i = 0; i < objects; i++)); do
    if [ "$sparse" = 1 ]; then truncate -s 8M "$src/part-$(printf %05d "$i").bin"
    else head -c 8M /dev/urandom > "$src/part-$(printf %05d "$i").bin"; fi
  done
  sums "$src" > "$work/src.sums"

  # 1. Upload of the folder. sluice's copy stays for the downloads; the peers' are removed
  # once checked (moto keeps every object, spooled to disk).
  measure up-sluice "s3-list $src | s3-get | s3-put --endpoint-url $url s3://$bucket/multi-sluice"
  expect_listed multi-sluice "$objects" "$total"
  measure up-sluice-copy "s3-list $src | s3-copy --endpoint-url $url --to s3://$bucket/multi-copy > /dev/null"
  expect_listed multi-copy "$objects" "$total"
  remove multi-copy
  measure up-aws "/usr/bin/aws --endpoint-url $url s3 cp --recursive --only-show-errors $src s3://$bucket/multi-aws"
  expect_listed multi-aws "$objects" "$total"
  remove multi-aws
  measure up-rclone "env -u AWS_CA_BUNDLE rclone --config /dev/null --s3-no-head copy $src X:$bucket/multi-rclone"
  expect_listed multi-rclone "$objects" "$total"
  remove multi-rclone
  echo "  1. upload, $objects files of 8 MiB"
  row "s3-list DIR | s3-get | s3-put s3://B/P (-j 8)" up-sluice
  row "s3-list DIR | s3-copy --to s3://B/P (one process)" up-sluice-copy
  row "aws s3 cp --recursive DIR s3://B/P (vs each)" up-aws up-sluice up-sluice-copy
  row "rclone copy DIR X:B/P (vs each)" up-rclone up-sluice up-sluice-copy

  # 3a. Download of the folder's objects (sluice's upload), by each tool.
  local d
  for d in sluice sluice-nofsync sluice-copy sluice-copy-nofsync sluice-count aws rclone; do
    rm -rf "$dl"
    case $d in
      sluice-copy) measure "down-$d" "s3-list --endpoint-url $url s3://$bucket/multi-sluice | s3-copy --endpoint-url $url --to $dl > /dev/null" ;;
      sluice-copy-nofsync) measure "down-$d" "s3-list --endpoint-url $url s3://$bucket/multi-sluice | s3-copy --no-fsync --endpoint-url $url --to $dl > /dev/null" ;;
      sluice) measure "down-$d" "s3-list --endpoint-url $url s3://$bucket/multi-sluice | s3-get --endpoint-url $url | s3-put $dl > /dev/null" ;;
      sluice-nofsync) measure "down-$d" "s3-list --endpoint-url $url s3://$bucket/multi-sluice | s3-get --endpoint-url $url | s3-put --no-fsync $dl > /dev/null" ;;
      sluice-count) measure "down-$d" "s3-list --endpoint-url $url s3://$bucket/multi-sluice | s3-get --endpoint-url $url | count" ;;
      aws) measure "down-$d" "/usr/bin/aws --endpoint-url $url s3 cp --recursive --only-show-errors s3://$bucket/multi-sluice $dl" ;;
      rclone) measure "down-$d" "env -u AWS_CA_BUNDLE rclone --config /dev/null --s3-no-head copy X:$bucket/multi-sluice $dl" ;;
    esac
    if [ "$d" = sluice-count ]; then
      # s3-get checked every object's SHA-256 against the one stored with it; count says how many.
      jq -e --argjson n "$objects" --argjson b "$total" '.objects == $n and .payloadBytes == $b' "$work/out" > /dev/null ||
        { echo "s3-transfer: s3-get | count gave $(cat "$work/out")" >&2; exit 1; }
    else
      sums "$dl" | cmp -s - "$work/src.sums" || { echo "s3-transfer: the $d download differs from the source" >&2; exit 1; }
    fi
  done
  rm -rf "$dl"
  echo "  3a. download, $objects objects of 8 MiB"
  row "s3-list s3://B/P | s3-get | s3-put DIR (durable)" down-sluice
  row "... | s3-put --no-fsync DIR (as the peers: no flush)" down-sluice-nofsync
  row "s3-list s3://B/P | s3-copy --to DIR (one process, durable)" down-sluice-copy
  row "... | s3-copy --no-fsync --to DIR (as the peers)" down-sluice-copy-nofsync
  row "s3-list s3://B/P | s3-get | count (no disk)" down-sluice-count
  row "aws s3 cp --recursive s3://B/P DIR (vs each DIR row)" down-aws down-sluice down-sluice-nofsync down-sluice-copy down-sluice-copy-nofsync
  row "rclone copy X:B/P DIR (vs each DIR row)" down-rclone down-sluice down-sluice-nofsync down-sluice-copy down-sluice-copy-nofsync
  remove multi-sluice

  # 2. One file of the whole size. The folder becomes one file and goes.
  cat "$src"/* > "$big"
  rm -rf "$src"
  local big_sum
  big_sum=$(sha256sum < "$big" | cut -d' ' -f1)
  mkdir -p "$work/one"
  ln "$big" "$work/one/big.bin"
  measure up1-aws "/usr/bin/aws --endpoint-url $url s3 cp --only-show-errors $big s3://$bucket/one-aws/big.bin"
  expect_listed one-aws 1 "$total"
  measure up1-rclone "env -u AWS_CA_BUNDLE rclone --config /dev/null --s3-no-head copy $big X:$bucket/one-rclone"
  expect_listed one-rclone 1 "$total"
  remove one-rclone
  # sluice reads a file larger than --pieces-above in 8 MiB pieces, which s3-put makes the
  # parts of one multipart upload: one object, as the peers make.
  measure up1-sluice "s3-list $work/one | s3-get --pieces-above 64M | s3-put --endpoint-url $url s3://$bucket/one-sluice"
  expect_listed one-sluice 1 "$total"
  remove one-sluice
  # s3-copy reads a local object over 64 MiB in 8 MiB pieces too, the parts of one upload.
  measure up1-sluice-copy "s3-list $work/one | s3-copy --endpoint-url $url --to s3://$bucket/one-copy > /dev/null"
  expect_listed one-copy 1 "$total"
  remove one-copy
  rm -rf "$work/one"
  # 3b. Its download, by each tool, of aws's object (one large copy on the server at a time).
  for d in sluice sluice-nofsync sluice-copy sluice-copy-nofsync aws rclone; do
    rm -rf "$dl" && mkdir -p "$dl"
    case $d in
      sluice-copy) measure "down1-$d" "s3-list --endpoint-url $url s3://$bucket/one-aws | s3-copy --endpoint-url $url --to $dl > /dev/null" ;;
      sluice-copy-nofsync) measure "down1-$d" "s3-list --endpoint-url $url s3://$bucket/one-aws | s3-copy --no-fsync --endpoint-url $url --to $dl > /dev/null" ;;
      sluice) measure "down1-$d" "s3-list --endpoint-url $url s3://$bucket/one-aws | s3-get --endpoint-url $url --pieces-above 64M | s3-put $dl" ;;
      sluice-nofsync) measure "down1-$d" "s3-list --endpoint-url $url s3://$bucket/one-aws | s3-get --endpoint-url $url --pieces-above 64M | s3-put --no-fsync $dl" ;;
      aws) measure "down1-$d" "/usr/bin/aws --endpoint-url $url s3 cp --only-show-errors s3://$bucket/one-aws/big.bin $dl/big.bin" ;;
      rclone) measure "down1-$d" "env -u AWS_CA_BUNDLE rclone --config /dev/null --s3-no-head copy X:$bucket/one-aws/big.bin $dl" ;;
    esac
    [ "$(sha256sum < "$dl/big.bin" | cut -d' ' -f1)" = "$big_sum" ] || { echo "s3-transfer: the $d download of one object differs" >&2; exit 1; }
  done
  rm -rf "$dl"
  remove one-aws
  echo "  2. upload, one file of $mib MiB as one object"
  row "s3-list DIR | s3-get --pieces-above 64M | s3-put s3://B/P" up1-sluice
  row "s3-list DIR | s3-copy --to s3://B/P (one process)" up1-sluice-copy
  row "aws s3 cp FILE s3://B/K (vs each)" up1-aws up1-sluice up1-sluice-copy
  row "rclone copy FILE X:B/P (vs each)" up1-rclone up1-sluice up1-sluice-copy
  echo "  3b. download, one object of $mib MiB"
  row "s3-list s3://B/P | s3-get --pieces-above 64M | s3-put DIR" down1-sluice
  row "... | s3-put --no-fsync DIR (as the peers: no flush)" down1-sluice-nofsync
  row "s3-list s3://B/P | s3-copy --to DIR (one process, durable)" down1-sluice-copy
  row "... | s3-copy --no-fsync --to DIR (as the peers)" down1-sluice-copy-nofsync
  row "aws s3 cp s3://B/K FILE (vs each DIR row)" down1-aws down1-sluice down1-sluice-nofsync down1-sluice-copy down1-sluice-copy-nofsync
  row "rclone copy X:B/K DIR (vs each DIR row)" down1-rclone down1-sluice down1-sluice-nofsync down1-sluice-copy down1-sluice-copy-nofsync

  # 4. A stream on stdin (the file through cat, from the page cache).
  measure pipe-sluice "cat $big | stream-chunk --name big | s3-put --endpoint-url $url s3://$bucket/pipe-sluice"
  expect_stream pipe-sluice
  remove pipe-sluice
  measure pipe-aws "cat $big | /usr/bin/aws --endpoint-url $url s3 cp --only-show-errors - s3://$bucket/pipe-aws/big.bin"
  expect_listed pipe-aws 1 "$total"
  remove pipe-aws
  # rclone 1.60's rcat reads the object back after the upload with HEAD ?versionId=null,
  # which moto 5.2 answers 400: the upload completes, rcat fails. Only the sink takes it.
  if [ "$server_kind" != moto ]; then
    measure pipe-rclone "cat $big | env -u AWS_CA_BUNDLE rclone --config /dev/null --s3-no-head rcat X:$bucket/pipe-rclone/big.bin"
    expect_listed pipe-rclone 1 "$total"
    remove pipe-rclone
  fi
  echo "  4. a stream of $mib MiB on stdin"
  row "cat FILE | stream-chunk --name N | s3-put s3://B/P" pipe-sluice
  row "cat FILE | aws s3 cp - s3://B/K" pipe-aws pipe-sluice
  if [ "$server_kind" != moto ]; then row "cat FILE | rclone rcat X:B/K" pipe-rclone pipe-sluice
  else echo "  cat FILE | rclone rcat X:B/K: fails on moto (HEAD ?versionId=null after the upload: 400)"; fi
  rm -f "$big"

  # 5. The server alone: plain PUTs and GETs of 8 MiB, 8 at a time, by a client that does
  # nothing else.
  local put get
  put=$(ceiling put ceiling/)
  get=$(ceiling get ceiling/)
  remove ceiling
  echo "  5. the server's ceiling, $objects plain requests of 8 MiB, 8 at a time (bench/lib/s3-load.js)"
  printf '  %-58s %7.2f s %7.1f MiB/s\n' "PUT" $put "GET" $get
  echo "  $server_kind server memory: $(server_rss)"
}

echo "== moto S3 (moto_server, in memory; objects over 5 MiB spooled to temporary files)"
start_moto
round 0
echo "== a discarding endpoint (bench/lib/s3-sink.js; the data is zeros: sparse files)"
start_sink
round 1
stop_server
echo "load average: before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
