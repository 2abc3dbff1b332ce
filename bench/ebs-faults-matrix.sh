#!/usr/bin/env bash
# The whole fault matrix, once: every EBS composition on every FSP pattern (and on their
# parent/child snapshots), in both store layouts, against two ebs-emulators injecting faults,
# throttling, not-found windows and expiring tokens, each result read back byte for byte.
# It runs test/ebs-faults.test.js four times, rotating the patterns through its places
# (SLUICE_FAULTS_ROTATION=0..3; CI runs only rotation 0); about 80 GiB move through the
# emulators, 20 to 40 minutes on two cores. It prints one line per rotation and exits 1 if any
# failed. The runs' full reports are kept in the folder it names.
# Usage: bash bench/ebs-faults-matrix.sh [ROTATION...]   (default 0 1 2 3; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
rotations=("$@")
[ "${#rotations[@]}" -gt 0 ] || rotations=(0 1 2 3)
reports=$(mktemp -d -p "${TMPDIR:-/tmp}" ebs-faults-matrix.XXXXXX)
failed=0
for rotation in "${rotations[@]}"; do
  start=$SECONDS
  if SLUICE_FAULTS_ROTATION=$rotation node --test test/ebs-faults.test.js > "$reports/rotation-$rotation.tap" 2>&1; then
    result=pass
  else
    result=FAIL
    failed=1
  fi
  # The test names say which pattern went where.
  places=$(sed -n 's/^ *ok [0-9]* - \(ebs-upload, .*chain [^,]*\),.*/\1/p; s/^ *ok [0-9]* - \(ebs-fanout of the [a-z0-9]* image\).*(\([a-z]*\) layout).*/\1, \2 layout/p' "$reports/rotation-$rotation.tap" | paste -sd ';' -)
  summary=$(grep -E '^# (pass|fail) ' "$reports/rotation-$rotation.tap" | tr '\n' ' ')
  echo "rotation $rotation: $result in $((SECONDS - start)) s; ${summary}; ${places}"
done
echo "reports: $reports"
exit "$failed"
