#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Create the TPU slice (a queued resource by default, or a plain TPU VM) and wait until ready.
usage() {
  cat >&2 <<'USAGE'
usage: launch/create.sh [--dry-run] [--no-wait]
Creates ACCELERATOR_TYPE as TPU_NAME in ZONE (settings: launch/settings.sh or AZR_SETTINGS).
USE_QUEUED=1 asks for a queued resource QUEUED_ID (needed for large pods and spot); SPOT=1
asks for spot capacity. Without --no-wait, polls until the slice is READY.
USAGE
}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WAIT=1
while [[ $# -gt 0 ]]; do
  common_flag "$1" || case "$1" in
    --no-wait) WAIT=0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done

create_slice() {
  local version capacity=()
  version="$(runtime_version)"
  if [[ "${SPOT}" == 1 ]]; then capacity=(--spot); fi
  if [[ "$USE_QUEUED" == 1 ]]; then
    queued create "$QUEUED_ID" "--node-id=$TPU_NAME" "--accelerator-type=$ACCELERATOR_TYPE" \
      "--runtime-version=$version" "${capacity[@]}"
  else
    tpu_vm create "$TPU_NAME" "--accelerator-type=$ACCELERATOR_TYPE" "--version=$version" "${capacity[@]}"
  fi
}

wait_ready() {
  while true; do
    read_slice_state
    case "$SLICE_STATE" in
      READY) outcome "$TPU_NAME is ready" "would poll until $TPU_NAME is READY (state assumed: READY)"; return 0 ;;
      FAILED|PREEMPTED|TERMINATED|SUSPENDED|NOT_FOUND) die "$TPU_NAME is $SLICE_STATE while waiting for it" ;;
      *) say "$TPU_NAME is $SLICE_STATE; waiting ${POLL_SECONDS}s" ;;
    esac
    sleep "$POLL_SECONDS"
  done
}

require ACCELERATOR_TYPE
create_slice
if [[ "$WAIT" == 1 ]]; then wait_ready; fi
