"""A damaged newest checkpoint: resume falls back to the newest intact one, says so (naming
both steps), keeps the damaged one aside, and trains on; SIGTERM handling agrees across
the processes of a multi-process run."""

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from azr_jax.errors import UserError
from azr_jax.pipeline.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = ["--config.sampling.max_new_tokens=16", "--config.trainer.checkpoint_every=1",
        "--config.trainer.keep=3"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(ROOT, ".cache", "jax")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    return env


def _train(workdir, steps):
    cmd = [sys.executable, "-m", "azr_jax.cli", "train", "--config", "tiny_cpu",
           "--workdir", str(workdir), f"--config.trainer.steps={steps}", *ARGS]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workdir with checkpoints of steps 1, 2 and 3."""
    work = tmp_path_factory.mktemp("fallback") / "w"
    r = _train(work, 3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(os.listdir(work / "checkpoints")) == ["1", "2", "3"]
    return work


def _files(step_dir, sub):
    return [os.path.join(step_dir, sub, n) for n in sorted(os.listdir(os.path.join(step_dir, sub)))
            if os.path.isfile(os.path.join(step_dir, sub, n))]


def _truncate_data(d):
    for f in _files(d, "state/d"):
        with open(f, "r+b") as fh:
            fh.truncate(max(1, os.path.getsize(f) // 3))


def _garbage_data(d):
    for f in _files(d, "state/d"):
        with open(f, "wb") as fh:
            fh.write(os.urandom(64))


def _write(path, data: bytes):
    with open(path, "wb") as fh:
        fh.write(data)


CORRUPTIONS = {
    "truncated_data": _truncate_data,
    "garbage_data": _garbage_data,
    "no_state_metadata": lambda d: os.remove(os.path.join(d, "state", "_METADATA")),
    "truncated_state_metadata": lambda d: _write(
        os.path.join(d, "state", "_METADATA"),
        open(os.path.join(d, "state", "_METADATA"), "rb").read()[:50]),
    "garbage_trainer_state": lambda d: _write(os.path.join(d, "trainer", "metadata"), b"\x00garbage{"),
    "trainer_state_without_buffers": lambda d: _write(os.path.join(d, "trainer", "metadata"), b"{}"),
    "no_state_dir": lambda d: shutil.rmtree(os.path.join(d, "state")),
    "empty_step_dir": lambda d: [shutil.rmtree(d), os.mkdir(d)],
}


@pytest.fixture(scope="module")
def target():
    from azr_jax.pipeline import setup as setup_lib
    from azr_jax.pipeline.config import load_config
    from azr_jax.rl.update import abstract_train_state
    from azr_jax.sharding import MeshConfig, make_mesh

    cfg = load_config("tiny_cpu")
    model_cfg, _, _ = setup_lib.load_model(cfg)
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    return abstract_train_state(model_cfg, setup_lib.optim_config(cfg), mesh)


def _check(trainer_state):
    from azr_jax.selfplay import Buffers

    Buffers.from_dict(trainer_state["buffers"])


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_fallback_past_corrupt_newest(trained, target, tmp_path, capsys, how):
    from azr_jax.checkpoints import TrainCheckpointer

    ckpts = tmp_path / "checkpoints"
    shutil.copytree(trained / "checkpoints", ckpts)
    CORRUPTIONS[how](str(ckpts / "3"))
    with TrainCheckpointer(str(ckpts)) as c:
        if how != "trainer_state_without_buffers":  # an explicit step never falls back
            with pytest.raises(UserError, match="checkpoint .*3"):
                c.restore(3, target)
        step, _, trainer_state = c.restore_newest_intact(target, check=_check)
        assert step == 2 and trainer_state["step"] == 2
        assert c.all_steps() == [1, 2]
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if ln.startswith("warning: checkpoint")][0]
    assert "step 3" in line and "resuming from step 2" in line
    assert sorted(os.listdir(ckpts)) == ["1", "2", "3.corrupt"]  # kept for inspection


def test_two_corrupt_and_all_corrupt(trained, target, tmp_path, capsys):
    from azr_jax.checkpoints import TrainCheckpointer

    ckpts = tmp_path / "checkpoints"
    shutil.copytree(trained / "checkpoints", ckpts)
    _garbage_data(str(ckpts / "3"))
    os.remove(ckpts / "2" / "state" / "_METADATA")
    with TrainCheckpointer(str(ckpts)) as c:
        assert c.restore_newest_intact(target, check=_check)[0] == 1
    assert "step 3, 2 " in capsys.readouterr().err
    _truncate_data(str(ckpts / "1"))
    with TrainCheckpointer(str(ckpts)) as c:
        with pytest.raises(UserError, match="no intact checkpoint .*step 1"):
            c.restore_newest_intact(target, check=_check)
    assert os.path.isdir(ckpts / "1")  # nothing is moved when nothing restores


def test_resume_cli_falls_back_and_trains_on(trained, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(trained, work)
    _truncate_data(str(work / "checkpoints" / "3"))
    r = _train(work, 4)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "checkpoint step 3" in r.stderr and "resuming from step 2" in r.stderr
    assert "trained steps 2..4" in r.stdout
    assert [m["step"] for m in read_metrics(str(work))] == [1, 2, 3, 4]
    assert {"3", "4", "3.corrupt"} <= set(os.listdir(work / "checkpoints"))  # step 3 saved anew


def test_export_hf_unwritable_output_and_corrupt_newest(trained, tmp_path, capsys):
    from azr_jax import cli

    work = tmp_path / "w"
    shutil.copytree(trained, work)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["export-hf", "--workdir", str(work), "--output", str(blocker / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "Traceback" not in err
    _garbage_data(str(work / "checkpoints" / "3"))
    assert cli.main(["export-hf", "--workdir", str(work), "--output", str(tmp_path / "hf")]) == 0
    out = capsys.readouterr()
    assert "exported step 2" in out.out and "exporting step 2" in out.err
    assert "3" in os.listdir(work / "checkpoints")  # an export does not move anything


# ---- SIGTERM across processes ----------------------------------------------------------


def test_preemption_guard_in_process():
    from azr_jax.pipeline import preemption

    assert not preemption.should_stop()  # no guard: never
    before = signal.getsignal(signal.SIGTERM)
    with preemption.guard() as g:
        assert not preemption.should_stop()
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process without the guard
        assert g.requested and preemption.should_stop()
    assert signal.getsignal(signal.SIGTERM) == before
    assert not preemption.should_stop()


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_processes_agree_on_the_stop_step(tmp_path):
    """Process 1 alone gets SIGTERM during step 2: both stop after step 2, and the run's two
    processes share one workdir lock (process 0 holds it) without locking each other out."""
    port = _free_port()
    env = dict(_env(), JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "preemption_worker.py"),
                               str(port), str(i), str(tmp_path / "w")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=240)[0])
        finally:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
    assert all("STOPPED_AFTER 2" in log for log in logs), logs
    assert all("SECOND_RUN_REFUSED" in log for log in logs), logs
