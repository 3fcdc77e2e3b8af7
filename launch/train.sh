#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Start (or stop) the training job: the same command on every worker, in the background.
usage() {
  cat >&2 <<'USAGE'
usage: launch/train.sh [--dry-run] [--stop | --restart]
Starts `azr-jax train --config CONFIG --workdir WORKDIR CONFIG_OVERRIDES` on every worker
(--worker=all), detached (setsid + nohup), logging to REMOTE_DIR/logs/train.log; the exit
status lands in logs/train.exit. Every host runs the same command: jax.distributed is
initialised from the TPU environment. Training resumes from the last checkpoint in WORKDIR.
A worker whose job is still running is left alone. --stop kills the job on every worker;
--restart stops it, then starts it again (resuming).
USAGE
}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ACTION=start
while [[ $# -gt 0 ]]; do
  common_flag "$1" || case "$1" in
    --stop) ACTION=stop ;;
    --restart) ACTION=restart ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done

# Kill the job's process group (setsid made the job its leader); forget its exit status.
# Wait up to a minute for it to exit (it holds the TPU), then SIGKILL what is left.
STOP="cd $REMOTE_DIR && if [ -f $JOB_PID ]; then p=\$(cat $JOB_PID); kill -- -\$p 2>/dev/null; for i in \$(seq 60); do kill -0 -- -\$p 2>/dev/null || break; sleep 1; done; kill -9 -- -\$p 2>/dev/null; rm -f $JOB_PID; fi; rm -f $JOB_EXIT; true"

start_command() {
  if [[ "$CONFIG_OVERRIDES$CONFIG$WORKDIR" == *"'"* ]]; then
    die "CONFIG, WORKDIR and CONFIG_OVERRIDES must not contain single quotes"
  fi
  local train=".venv/bin/azr-jax train --config $CONFIG --workdir $WORKDIR"
  if [[ -n "$CONFIG_OVERRIDES" ]]; then train="$train $CONFIG_OVERRIDES"; fi
  local running="[ -f $JOB_PID ] && kill -0 \$(cat $JOB_PID) 2>/dev/null"
  local job="$train >> $JOB_LOG 2>&1; echo \$? > $JOB_EXIT"
  echo "cd $REMOTE_DIR && mkdir -p logs && if $running; then echo already running; else rm -f $JOB_EXIT; nohup setsid bash -c '$job' > /dev/null 2>&1 < /dev/null & echo \$! > $JOB_PID; fi"
}

if [[ "$ACTION" != stop ]]; then require_workdir; require_config; fi
case "$ACTION" in
  stop) ssh_workers "$STOP" ;;
  start) ssh_workers "$(start_command)" ;;
  restart) ssh_workers "$STOP"; ssh_workers "$(start_command)" ;;
esac
case "$ACTION" in
  stop) outcome "stopped the job on every worker" "would stop the job on every worker" ;;
  *) outcome "job started on every worker of $TPU_NAME (a worker already running it kept it); follow it with launch/logs.sh -f" \
             "would start \`azr-jax train --config $CONFIG --workdir $WORKDIR\` on every worker" ;;
esac
