# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR disable=SC2034  # (variables here are used by the scripts)
# Helpers shared by the launch scripts: settings, dry-run printing, gcloud wrappers.
#
# Dry run (--dry-run or DRY_RUN=1): every command that would run is printed on stdout, one
# per line, shell-quoted so it can be pasted; nothing runs. Otherwise each command is echoed
# on stderr with a "+ " prefix, then run. Messages for the user always go to stderr.

set -euo pipefail

LAUNCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$LAUNCH_DIR")"
# shellcheck source=settings.sh
source "$LAUNCH_DIR/settings.sh"
if [[ -n "${AZR_SETTINGS:-}" ]]; then
  # shellcheck disable=SC1090
  source "$AZR_SETTINGS"
fi
: "${DRY_RUN:=0}"
: "${QUEUED_ID:=${TPU_NAME}-qr}"

# Log files of the training job on every worker (relative to REMOTE_DIR).
JOB_LOG="logs/train.log"
JOB_PID="logs/train.pid"
JOB_EXIT="logs/train.exit"

say() { echo "[$(basename "$0")] $*" >&2; }
die() { say "error: $*"; exit 2; }

# A line about what happened (first argument), or in a dry run, where nothing ran and every
# state is assumed, the line about what would happen (second argument).
outcome() {
  if [[ "$DRY_RUN" == 1 ]]; then say "dry run, nothing ran: $2"; else say "$1"; fi
}

# Stop (exit 2) unless every named setting is non-empty; says where settings come from.
require() {
  local name missing=()
  for name in "$@"; do
    if [[ -z "${!name:-}" ]]; then missing+=("$name"); fi
  done
  if (( ${#missing[@]} )); then
    die "required setting(s) not set: ${missing[*]} (launch/settings.sh, AZR_SETTINGS or the environment)"
  fi
}

# Print arguments as one shell-quoted line (plain words stay bare).
quote_cmd() {
  local out=() a q="'\\''"
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
      out+=("$a")
    else
      out+=("'${a//\'/$q}'")
    fi
  done
  printf '%s\n' "${out[*]}"
}

# Run a command, or only print it in a dry run.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    quote_cmd "$@"
    return 0
  fi
  echo "+ $(quote_cmd "$@")" >&2
  "$@"
}

# Handle the flags every script has; returns 1 when the flag is not a common one.
common_flag() {
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) return 1 ;;
  esac
}

# The software image for a TPU generation, unless RUNTIME_VERSION says otherwise.
runtime_version() {
  if [[ -n "$RUNTIME_VERSION" ]]; then echo "$RUNTIME_VERSION"; return; fi
  case "$ACCELERATOR_TYPE" in
    v4-*) echo "tpu-ubuntu2204-base" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v5litepod-*|v5e-*) echo "v2-alpha-tpuv5-lite" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
    *) die "no default runtime version for ACCELERATOR_TYPE=$ACCELERATOR_TYPE; set RUNTIME_VERSION" ;;
  esac
}

location_flags() {
  require ZONE TPU_NAME
  LOCATION_FLAGS=("--zone=$ZONE")
  if [[ -n "$PROJECT" ]]; then LOCATION_FLAGS+=("--project=$PROJECT"); fi
}

tpu_vm() {  # gcloud compute tpus tpu-vm SUBCOMMAND ARGS... (with zone/project)
  location_flags
  run gcloud compute tpus tpu-vm "$@" "${LOCATION_FLAGS[@]}"
}

queued() {  # gcloud compute tpus queued-resources SUBCOMMAND ARGS...
  location_flags
  run gcloud compute tpus queued-resources "$@" "${LOCATION_FLAGS[@]}"
}

# Run one shell command line on workers (default: all, in parallel).
ssh_workers() {
  local command="$1" worker="${2:-all}"
  tpu_vm ssh "$TPU_NAME" "--worker=$worker" "--command=$command"
}

# Set SLICE_STATE to the slice's state, normalised: READY, CREATING, PREEMPTED, FAILED,
# SUSPENDED, NOT_FOUND, ... In a dry run the describe command is printed and ASSUME_STATE
# (default READY) is used. (A variable, not stdout: the dry-run line must reach stdout.)
read_slice_state() {
  local state
  location_flags
  if [[ "$USE_QUEUED" == 1 ]]; then
    local cmd=(gcloud compute tpus queued-resources describe "$QUEUED_ID" "${LOCATION_FLAGS[@]}"
               "--format=value(state.state)")
  else
    local cmd=(gcloud compute tpus tpu-vm describe "$TPU_NAME" "${LOCATION_FLAGS[@]}"
               "--format=value(state)")
  fi
  if [[ "$DRY_RUN" == 1 ]]; then
    quote_cmd "${cmd[@]}"
    state="${ASSUME_STATE:-READY}"
  else
    state="$("${cmd[@]}" 2>/dev/null || true)"
    state="${state:-NOT_FOUND}"
  fi
  # A queued resource that is ACTIVE has a READY node.
  if [[ "$state" == ACTIVE ]]; then state=READY; fi
  SLICE_STATE="$state"
}

require_workdir() {
  [[ -n "$WORKDIR" ]] || die "WORKDIR is not set: give a gs:// bucket path or a mount every worker sees that outlives the VMs (see docs/tpu_and_pods.md)"
}

# CONFIG must name a recipe of this checkout (a path or a name under configs/): the workers
# get this checkout's code, so a typo would only show up in the job's log on the pod.
require_config() {
  require CONFIG
  [[ -f "$REPO_DIR/$CONFIG" || -f "$REPO_DIR/configs/${CONFIG%.py}.py" || -f "$CONFIG" ]] \
    || die "CONFIG=$CONFIG is not a file of this checkout (e.g. configs/qwen2_5_7b.py)"
}
