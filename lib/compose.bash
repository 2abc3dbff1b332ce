# Argument handling shared by the composed commands in bin/ (ebs-size, ebs-download, ...): each
# is a short bash pipeline of sluice commands, and this is only what every one of them parses.
# A command sets $here and $USAGE, sources this file, and reads its arguments with a loop of the form
#   while (($#)); do case $1 in --own-flag) ...; shift 2 ;; *) common_arg "$@"; shift "$taken" ;; esac; done

name=$(basename "$0")

aws=()      # AWS settings of the snapshots read (or written): --region, --profile, --endpoint-url
args=()     # positional arguments
declare -A dest_setting=()  # --dest-region, --dest-profile, --dest-endpoint-url (ebs-copy, ebs-sync)

# "--flag=value" becomes "--flag" "value" (up to a "--"), so the commands match flags alone.
split=()
while (($#)); do
  case $1 in
    --) split+=("$@"); break ;;
    --*=*) split+=("${1%%=*}" "${1#*=}") ;;
    *) split+=("$1") ;;
  esac
  shift
done
set -- "${split[@]}"

# The usage text, ending with the toolkit's exit statuses (as every command's does); a
# composition exits with the status of its pipeline's first stage that failed.
usage() {
  printf '%s\n\nThe status is that of the first stage of the pipeline that failed.\n' "$USAGE"
  # A reader that went away (`--help | head -1`) is no failure: the error is ignored, not thrown.
  node -e 'process.stdout.on("error", () => {}); process.stdout.write(require(process.argv[1]).EXIT_STATUS_TEXT + "\n")' "$here/../dist/core/command.js"
}

usage_error() {
  printf '%s: %s\n\n' "$name" "$1" >&2
  usage >&2
  exit 2
}

# The value of a flag that takes one: "$2" of "$@", or a usage error when it is missing.
need_value() {
  (($# >= 2)) || usage_error "$1 needs a value"
  value=$2
}

# Takes the argument(s) at "$1": --help, an AWS setting, --dest-* when the command set
# accepts_dest=1, "--", or a positional. Sets $taken to the number consumed.
common_arg() {
  taken=1
  case $1 in
    -h | --help) usage; exit 0 ;;
    --region | --profile | --endpoint-url) need_value "$@"; aws+=("$1" "$value"); taken=2 ;;
    --dest-region | --dest-profile | --dest-endpoint-url)
      [[ ${accepts_dest:-} ]] || usage_error "unknown option $1"
      need_value "$@"; dest_setting[--${1#--dest-}]=$value; taken=2 ;;
    --) shift; args+=("$@"); taken=$(($# + 1)) ;;
    -?*) usage_error "unknown option $1" ;;
    *) args+=("$1") ;;
  esac
}

# The destination's AWS settings: each --dest-* given, else the source's same setting.
dest_aws() {
  dest=()
  local i flag
  for ((i = 0; i < ${#aws[@]}; i += 2)); do
    [[ -v dest_setting[${aws[i]}] ]] || dest+=("${aws[i]}" "${aws[i + 1]}")
  done
  for flag in "${!dest_setting[@]}"; do dest+=("$flag" "${dest_setting[$flag]}"); done
}

# Ends the script with the status of a pipeline's first stage that failed: the stages after it
# only saw their input stop short (status 3), which says less. Use: a | b || exit_first "${PIPESTATUS[@]}"
exit_first() {
  local s
  for s in "$@"; do ((s == 0)) || exit "$s"; done
  exit 1
}

# Runs the function "$1", which holds the composition's pipeline (ending, as usual, with
# `|| exit_first "${PIPESTATUS[@]}"`), and ends the script with its status. A signal to bash is
# deferred while a foreground pipeline runs, and not passed on: so the pipeline runs in the
# background and is waited for (a wait is interrupted by traps), and a TERM or INT stops every
# process under it and ends the script with 128+n, as each command does.
run_pipeline() {
  # <&0: a background command would otherwise read /dev/null. The subshell only waits: a signal
  # it gets is run as a no-op trap, so it still reports its pipeline's statuses.
  ( trap : INT TERM; "$@" ) <&0 &
  pipeline_pid=$!
  trap 'stop_pipeline TERM' TERM
  trap 'stop_pipeline INT' INT
  local status=0
  wait "$pipeline_pid" || status=$?
  exit "$status"
}

# Sends the signal $1 to every process under the pipeline, waits until each is gone (each
# command ends cleanly on it, committing nothing partial), and exits 128+n.
stop_pipeline() {
  trap '' INT TERM
  local pids
  pids=$(descendants "$pipeline_pid")
  [[ -z $pids ]] || kill -s "$1" $pids 2>/dev/null || true
  wait "$pipeline_pid" 2>/dev/null || true
  # Those whose parent already ended are not this shell's to wait for: watch them go instead
  # (an orphan that ended may linger as a zombie until it is reaped: that counts as gone).
  while [[ $pids ]]; do
    pids=$(ps -o pid= -o stat= -p "${pids//$'\n'/,}" | awk '$2 !~ /^Z/ { print $1 }' || true)
    [[ -z $pids ]] || sleep 0.1
  done
  exit $((128 + $(kill -l "$1")))
}

# The processes under pid $1, parents before their children, one a line.
descendants() {
  local child
  for child in $(pgrep -P "$1"); do
    echo "$child"
    descendants "$child"
  done
}

# file-write's flags for a set of targets: new files, or, when every target is a block device,
# in place with the blocks the stream lacks written as zeros (a device is not empty to begin with).
target_flags() {
  local t devices=0
  for t in "$@"; do [[ -b $t ]] && devices=$((devices + 1)); done
  if ((devices == 0)); then write_flags=(); return; fi
  ((devices == $#)) || usage_error "targets mix block devices and files; give them in separate runs"
  write_flags=(--in-place --zero-absent)
}
