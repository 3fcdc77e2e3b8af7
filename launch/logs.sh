#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Show the training log of one worker (or all), optionally following it.
usage() {
  cat >&2 <<'USAGE'
usage: launch/logs.sh [--dry-run] [--worker N|all] [--lines N] [--follow]
Prints the last --lines (default 100) of REMOTE_DIR/logs/train.log on worker N (default 0,
the host that writes metrics and checkpoints' metadata); --follow keeps streaming.
USAGE
}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WORKER=0
LINES=100
FOLLOW=()
while [[ $# -gt 0 ]]; do
  common_flag "$1" || case "$1" in
    --worker) WORKER="${2:?--worker needs a value}"; shift ;;
    --lines) LINES="${2:?--lines needs a value}"; shift ;;
    --follow|-f) FOLLOW=(-F) ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done
[[ "$LINES" =~ ^[0-9]+$ ]] || die "--lines must be a number, not '$LINES'"
[[ "$WORKER" =~ ^([0-9]+|all)$ ]] || die "--worker must be a number or 'all', not '$WORKER'"

ssh_workers "tail -n $LINES ${FOLLOW[*]} $REMOTE_DIR/$JOB_LOG" "$WORKER"
