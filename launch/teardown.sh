#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Delete the TPU slice (and its queued resource). The workdir on GCS is kept.
usage() {
  cat >&2 <<'USAGE'
usage: launch/teardown.sh [--dry-run]
Deletes TPU_NAME (with USE_QUEUED=1: the queued resource QUEUED_ID and its node). Checkpoints
in WORKDIR are not touched: `launch/create.sh && launch/setup.sh && launch/train.sh` resumes.
USAGE
}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

while [[ $# -gt 0 ]]; do
  common_flag "$1" || { usage; die "unknown argument: $1"; }
  shift
done

delete_slice() {
  if [[ "$USE_QUEUED" == 1 ]]; then
    queued delete "$QUEUED_ID" --force --quiet
  else
    tpu_vm delete "$TPU_NAME" --quiet
  fi
}

delete_slice
outcome "deleted $TPU_NAME; WORKDIR is kept" "would delete $TPU_NAME; WORKDIR would be kept"
