# shellcheck shell=bash
# Shared settings of the launch scripts (sourced by launch/lib.sh).
#
# Every value can be overridden from the environment for one command
#   TPU_NAME=run2 ACCELERATOR_TYPE=v5p-64 launch/create.sh
# or from your own copy of this file, named by AZR_SETTINGS:
#   AZR_SETTINGS=~/azr-7b.sh launch/babysit.sh
# (that file is sourced after this one, so it only needs the values it changes).

# --- where ---------------------------------------------------------------------------------
: "${PROJECT:=}"                       # empty: gcloud's configured project
: "${ZONE:=us-east5-a}"                # v5p: us-east5-a; v4: us-central2-b; v6e: us-east5-b
: "${TPU_NAME:=azr-jax}"               # the TPU VM (node) name
: "${QUEUED_ID:=}"                     # queued-resource id; empty: ${TPU_NAME}-qr

# --- what ----------------------------------------------------------------------------------
: "${ACCELERATOR_TYPE:=v5p-128}"       # the recipe's TPU_SLICE: v5p-128 = 64 chips, 16 hosts
: "${RUNTIME_VERSION:=}"               # empty: picked from the TPU generation (see lib.sh)
: "${USE_QUEUED:=1}"                   # 1: queued resources (pods, spot); 0: tpu-vm create
: "${SPOT:=0}"                         # 1: spot capacity (cheaper, can be preempted)

# --- code ----------------------------------------------------------------------------------
: "${CODE_SOURCE:=copy}"               # copy: tar this checkout and scp it; git: clone GIT_URL
: "${GIT_URL:=}"                       # with CODE_SOURCE=git
: "${GIT_REF:=main}"
: "${REMOTE_DIR:=azr-jax}"             # code directory on every worker, relative to $HOME
: "${PYTHON:=python3.11}"              # the venv's interpreter; installed with apt if missing

# --- training ------------------------------------------------------------------------------
: "${CONFIG:=configs/qwen2_5_7b.py}"   # a recipe from configs/
: "${CONFIG_OVERRIDES:=}"              # extra flags, e.g. "--config.trainer.steps=500"
: "${WORKDIR:=}"                       # gs://BUCKET/run or a shared mount: checkpoints + metrics (docs/tpu_and_pods.md)

# --- babysitting ---------------------------------------------------------------------------
: "${POLL_SECONDS:=120}"               # how often babysit.sh looks at the slice and the job
: "${MAX_RESTARTS:=50}"                # give up after this many recreations/relaunches
