#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Put the code on every worker of the slice and install requirements-tpu.txt in a venv there.
usage() {
  cat >&2 <<'USAGE'
usage: launch/setup.sh [--dry-run] [--skip-install]
CODE_SOURCE=copy (default): tars this checkout (no .git, .venv, caches) and scps it to every
worker; CODE_SOURCE=git: every worker clones GIT_URL at GIT_REF. Then, on every worker,
creates REMOTE_DIR/.venv with PYTHON (apt-installed if missing) and installs
requirements-tpu.txt (jax[tpu]) under constraints.txt, and checks that JAX sees the TPU.
Safe to re-run: it replaces the code and updates the venv.
USAGE
}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INSTALL=1
while [[ $# -gt 0 ]]; do
  common_flag "$1" || case "$1" in
    --skip-install) INSTALL=0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done

TARBALL="${TMPDIR:-/tmp}/azr-jax-code.tar.gz"

push_code() {
  if [[ "$CODE_SOURCE" == copy ]]; then
    run tar -czf "$TARBALL" -C "$REPO_DIR" --exclude=.git --exclude=.venv --exclude=.cache \
      --exclude=__pycache__ --exclude=workdirs .
    tpu_vm scp "$TARBALL" "$TPU_NAME:azr-jax-code.tar.gz" --worker=all
    ssh_workers "mkdir -p $REMOTE_DIR && tar -xzf azr-jax-code.tar.gz -C $REMOTE_DIR && rm azr-jax-code.tar.gz"
  elif [[ "$CODE_SOURCE" == git ]]; then
    [[ -n "$GIT_URL" ]] || die "CODE_SOURCE=git needs GIT_URL"
    ssh_workers "if [ -d $REMOTE_DIR/.git ]; then git -C $REMOTE_DIR fetch --depth 1 origin $GIT_REF && git -C $REMOTE_DIR checkout --force FETCH_HEAD; else git clone --depth 1 --branch $GIT_REF $GIT_URL $REMOTE_DIR; fi"
  else
    die "CODE_SOURCE must be copy or git, not '$CODE_SOURCE'"
  fi
}

install_requirements() {
  # Ubuntu 22.04 TPU images ship python3.10; the package needs >= 3.11.
  local py="command -v $PYTHON >/dev/null || (sudo apt-get update -qq && sudo apt-get install -y -qq $PYTHON ${PYTHON}-venv)"
  local venv="cd $REMOTE_DIR && ($PYTHON -m venv .venv || true) && .venv/bin/pip install -q --upgrade pip"
  local deps=".venv/bin/pip install -q -r requirements-tpu.txt -c constraints.txt && .venv/bin/pip install -q --no-deps --no-build-isolation -e ."
  local check=".venv/bin/python -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())'"
  ssh_workers "$py && $venv && $deps && $check"
}

require REMOTE_DIR PYTHON CODE_SOURCE
push_code
if [[ "$INSTALL" == 1 ]]; then install_requirements; fi
outcome "setup done on every worker of $TPU_NAME" \
        "would put the code$([[ $INSTALL == 1 ]] && echo " and the venv") on every worker of $TPU_NAME"
