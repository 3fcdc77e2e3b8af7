#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Keep a training run alive: poll the slice and the job; after a preemption recreate the
# slice, set it up and relaunch (training resumes from the last checkpoint in WORKDIR).
usage() {
  cat >&2 <<'USAGE'
usage: launch/babysit.sh [--dry-run] [--once] [--assume-state S] [--assume-job J]
Every POLL_SECONDS: reads the slice state and, when READY, the job state on every worker.
  slice PREEMPTED/TERMINATED/FAILED/SUSPENDED/NOT_FOUND -> teardown, create, setup, train
  slice CREATING/PROVISIONING/WAITING...                 -> wait
  job running -> wait;  finished (all exit 0) -> stop babysitting
  job failed or missing on any worker -> restart it on every worker (it resumes)
Gives up after MAX_RESTARTS recoveries. Run it in tmux/screen, or from a small always-on VM.
--once does one round. In a dry run (one round) the slice state is --assume-state (default
READY) and the job state --assume-job (running|finished|failed|absent, default running).
USAGE
}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONCE=0
ASSUME_JOB=running
while [[ $# -gt 0 ]]; do
  common_flag "$1" || case "$1" in
    --once) ONCE=1 ;;
    --assume-state) ASSUME_STATE="${2:?--assume-state needs a value}"; shift ;;
    --assume-job) ASSUME_JOB="${2:?--assume-job needs a value}"; shift ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done
require_workdir
require_config
if [[ "$DRY_RUN" == 1 ]]; then ONCE=1; fi
export DRY_RUN AZR_SETTINGS  # the child scripts see the same mode and settings
SCRIPTS="$LAUNCH_DIR"

# Set JOB_STATE (running | finished | restart | unknown) from one word per worker:
# running | finished | failed | absent (or unreachable when ssh itself fails).
read_job_state() {
  local probe words
  probe="cd $REMOTE_DIR 2>/dev/null || { echo absent; exit 0; }; if [ -f $JOB_EXIT ]; then [ \"\$(cat $JOB_EXIT)\" = 0 ] && echo finished || echo failed; elif [ -f $JOB_PID ] && kill -0 \$(cat $JOB_PID) 2>/dev/null; then echo running; else echo absent; fi"
  location_flags
  local cmd=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --worker=all "--command=$probe" "${LOCATION_FLAGS[@]}")
  if [[ "$DRY_RUN" == 1 ]]; then
    quote_cmd "${cmd[@]}"
    words="$ASSUME_JOB"
  else
    words="$("${cmd[@]}" 2>/dev/null || echo unreachable)"
  fi
  if grep -qw unreachable <<<"$words"; then JOB_STATE=unknown
  elif grep -qwE 'failed|absent' <<<"$words"; then JOB_STATE=restart
  elif grep -qw running <<<"$words"; then JOB_STATE=running
  elif grep -qw finished <<<"$words"; then JOB_STATE=finished
  else JOB_STATE=restart
  fi
}

RESTARTS=0
count_restart() {
  RESTARTS=$((RESTARTS + 1))
  if (( RESTARTS > MAX_RESTARTS )); then die "gave up after $MAX_RESTARTS recoveries"; fi
}

recreate() {
  outcome "slice is $SLICE_STATE: recreating it (recovery $RESTARTS of at most $MAX_RESTARTS)" \
          "slice assumed $SLICE_STATE: would recreate it (teardown, create, setup, train)"
  if [[ "$SLICE_STATE" != NOT_FOUND ]]; then "$SCRIPTS/teardown.sh"; fi
  "$SCRIPTS/create.sh"
  "$SCRIPTS/setup.sh"
  "$SCRIPTS/train.sh"
}

while true; do
  read_slice_state
  case "$SLICE_STATE" in
    READY)
      read_job_state
      case "$JOB_STATE" in
        running) outcome "job running" "job assumed running: would look again in ${POLL_SECONDS}s" ;;
        unknown) say "could not reach the workers: trying again next round" ;;
        finished) outcome "job finished on every worker" "job assumed finished: would stop babysitting"; exit 0 ;;
        restart) count_restart
          outcome "job failed or missing: restarting it" "job assumed $ASSUME_JOB: would restart it on every worker"
          "$SCRIPTS/train.sh" --restart ;;
      esac ;;
    PREEMPTED|TERMINATED|FAILED|SUSPENDED|SUSPENDING|NOT_FOUND)
      count_restart; recreate ;;
    *) outcome "slice is $SLICE_STATE: waiting" "slice assumed $SLICE_STATE: would wait ${POLL_SECONDS}s" ;;
  esac
  if [[ "$ONCE" == 1 ]]; then exit 0; fi
  sleep "$POLL_SECONDS"
done
