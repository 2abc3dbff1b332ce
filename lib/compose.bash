# Argument handling shared by the composed commands in bin/ (ebs-size, ebs-download, ...): each
# is a short bash pipeline of sluice commands, and this is only what every one of them parses.
# A command sets $here and $USAGE, sources this file, and reads its arguments with a loop of the form
#   while (($#)); do case $1 in --own-flag) ...; shift 2 ;; *) common_arg "$@"; shift "$taken" ;; esac; done

name=$(basename "$0")

aws=()      # AWS settings of the snapshots read (or written): --region, --profile, --endpoint-url
args=()     # positional arguments
declare -A dest_setting=()  # --dest-region, --dest-profile, --dest-endpoint-url (ebs-copy, ebs-sync)
resume_id=''     # --resume SNAPSHOT-ID (ebs-upload, ebs-copy, ebs-sync)
done_journals=() # --done JOURNAL..., as skip and ebs-put take them
resume=()        # ebs-put's --resume SNAPSHOT-ID --done JOURNAL..., when resuming

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
# accepts_dest=1, --resume and --done when it set accepts_resume=1, "--", or a positional.
# Sets $taken to the number consumed.
common_arg() {
  taken=1
  case $1 in
    -h | --help) usage; exit 0 ;;
    --region | --profile | --endpoint-url) need_value "$@"; aws+=("$1" "$value"); taken=2 ;;
    --dest-region | --dest-profile | --dest-endpoint-url)
      [[ ${accepts_dest:-} ]] || usage_error "unknown option $1"
      need_value "$@"; dest_setting[--${1#--dest-}]=$value; taken=2 ;;
    --resume | --done)
      [[ ${accepts_resume:-} ]] || usage_error "unknown option $1"
      need_value "$@"; taken=2
      if [[ $1 == --done ]]; then done_journals+=(--done "$value")
      else [[ -z $resume_id ]] || usage_error "--resume is given once"; resume_id=$value; fi ;;
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

# Checks --resume and --done once the arguments are read, and sets $resume for ebs-put. The flags
# in "$@" (--description, --size) are the ones given when a snapshot starts: not on a resume.
# The output must be a new journal: one read back while it is written would be garbled.
check_resume() {
  if [[ -z $resume_id ]]; then
    ((${#done_journals[@]} == 0)) || usage_error "--done goes with --resume"
    return 0
  fi
  ((${#done_journals[@]})) || usage_error "--resume needs the earlier runs' journals (--done JOURNAL)"
  (($# == 0)) || usage_error "$1 is given when a snapshot starts, not with --resume"
  local i
  for ((i = 1; i < ${#done_journals[@]}; i += 2)); do
    [[ ! /dev/stdout -ef ${done_journals[i]} ]] || usage_error "the output is the journal ${done_journals[i]}: give this run a journal of its own"
  done
  resume=(--resume "$resume_id" "${done_journals[@]}")
}

# Runs "$@", the stage whose output ebs-get reads (for ebs-upload, ebs-put), and when resuming
# drops from that output the blocks the journals say were put (skip --done), so that they are
# neither read nor put again; the status is that of the first of the two that failed.
not_done() {
  if [[ -z $resume_id ]]; then "$@"; return; fi
  "$@" | "$here/skip" "${done_journals[@]}" || exit_first "${PIPESTATUS[@]}"
}

# Says on stderr how to finish the snapshot a failed run left pending (ebs-upload, ebs-copy,
# ebs-sync): with its id and journal when the output is a file, else in words. A resume of one
# an earlier run completed has nothing to finish.
resume_hint() {
  [[ ${accepts_resume:-} ]] || return 0
  local id=$resume_id journal=JOURNAL what self=$BASHPID note='' i
  for ((i = 1; i < ${#done_journals[@]}; i += 2)); do
    grep -q '"status":"completed"' "${done_journals[i]}" 2>/dev/null || continue
    echo "$name: $id was completed by the run of ${done_journals[i]}: nothing to resume" >&2
    return 0
  done
  if [[ -f /dev/stdout ]]; then
    journal=$(readlink -f "/proc/$self/fd/1")
    [[ $id ]] || id=$(grep -m 1 -o '"snapshotId":"snap-[0-9a-f]*"' "$journal" | cut -d '"' -f 4 || true)
    [[ $id ]] || { echo "$name: no snapshot was started: nothing to resume" >&2; return 0; }
  else
    note=" (JOURNAL: this run's output)"
    [[ $id ]] || note=" (JOURNAL: this run's output, whose first record names SNAPSHOT-ID)"
  fi
  what=${id:-a snapshot this run started} id=${id:-SNAPSHOT-ID}
  echo "$name: $what is left pending; to finish it, run $name again with the same arguments (less" \
    "--description, --size) and --resume $id ${done_journals[*]}${done_journals[*]:+ }--done $journal$note" >&2
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
# process under it and ends the script with 128+n, as each command does. Nor does the pipeline
# outlive a script killed outright (SIGKILL): a watcher stops it then (see watch_pipeline).
run_pipeline() {
  # <&0: a background command would otherwise read /dev/null. The subshell only waits: a signal
  # it gets is run as a no-op trap, so it still reports its pipeline's statuses.
  ( trap : INT TERM; "$@" ) <&0 &
  pipeline_pid=$!
  trap 'stop_pipeline TERM' TERM
  trap 'stop_pipeline INT' INT
  exec {guard}> >(watch_pipeline)
  local status=0
  wait "$pipeline_pid" || status=$?
  ((status == 0 || status == 2)) || resume_hint
  end_script "$status"
}

# Reads the pipe only the script writes to (the pipeline was started before it, and holds no
# end of it): when it ends without "done", the script was killed, and the pipeline is stopped
# as a TERM would (every command ends cleanly on it, committing nothing partial).
watch_pipeline() {
  trap '' INT TERM
  local word=''
  read -r word || true
  [[ $word == done ]] || stop_pipeline TERM
}

# Tells the watcher the script ends of its own accord, and exits with $1.
end_script() {
  trap '' PIPE # a watcher that is gone is no reason to end otherwise
  [[ -z ${guard:-} ]] || echo done >&"$guard" 2>/dev/null || true
  exit "$1"
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
  resume_hint
  end_script $((128 + $(kill -l "$1")))
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
