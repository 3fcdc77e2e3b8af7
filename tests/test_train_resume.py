"""Resume: a run killed with SIGKILL mid-step and restarted reproduces an uninterrupted
run's later metrics exactly; bad input gets one clear message and loses no checkpoint."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from azr_jax.errors import UserError
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--config.trainer.steps=4", "--config.trainer.checkpoint_every=2",
        "--config.sampling.max_new_tokens=16"]
# Timings and throughput differ between runs; everything else must match exactly.
VOLATILE = ("time/", "device_idle_frac", "tokens_per_s")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(ROOT, ".cache", "jax")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    return env


def _train(workdir, extra=(), **kw):
    cmd = [sys.executable, "-m", "azr_jax.cli", "train", "--config", "tiny_cpu",
           "--workdir", str(workdir), *ARGS, *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _stable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def test_sigkill_mid_step_then_resume_is_exact(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    p = _train(ref)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    # kill -9 during step 4: step 3's metrics are written, the last checkpoint is step 2
    p = _train(killed)
    deadline = time.time() + 600
    while time.time() < deadline and len(read_metrics(str(killed))) < 3:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert len(read_metrics(str(killed))) == 3  # step 4 had not finished
    # what a save killed half-way leaves behind (Orbax's temporary step directory)
    partial = killed / "checkpoints" / "4.orbax-checkpoint-tmp-1764130000000000"
    partial.mkdir(parents=True)
    (partial / "junk").write_bytes(b"\0" * 100)
    p = _train(killed)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    a, b = _stable(read_metrics(str(ref))), _stable(read_metrics(str(killed)))
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert a == b


def test_incompatible_workdir_and_unknown_key(tmp_path):
    (tmp_path / "w").mkdir()
    saved = load_config("tiny_cpu", [a[len("--config."):] for a in ARGS])
    from azr_jax.pipeline.config import config_to_json

    (tmp_path / "w" / "config.json").write_text(config_to_json(saved))
    p = _train(tmp_path / "w", ["--config.model.preset=smollm2-135m"])
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 2
    assert out.strip().splitlines()[-1].startswith("error: workdir")
    assert "incompatible config (model.preset: saved 'tiny', now 'smollm2-135m')" in out
    p = _train(tmp_path / "x", ["--config.trainer.stepz=3"])
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 2 and "unknown config key 'trainer.stepz'" in out
    assert not (tmp_path / "x").exists()


def test_full_disk_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch):
    from azr_jax.pipeline import setup as setup_lib
    from azr_jax.pipeline.trainer import train

    cfg = load_config("tiny_cpu", ["trainer.steps=2", "trainer.checkpoint_every=1",
                                   "sampling.max_new_tokens=16"])
    workdir = str(tmp_path / "w")
    real_build = setup_lib.build

    def build(cfg, workdir):
        env = real_build(cfg, workdir)
        real_save = env.checkpointer.save

        def save(step, *a, **k):
            if step == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_save(step, *a, **k)

        env.checkpointer.save = save
        return env

    monkeypatch.setattr(setup_lib, "build", build)
    with pytest.raises(UserError, match=r"saving the checkpoint of step 2 .* no space left on "
                                        r"device; the previous checkpoint \(step 1\) is intact"):
        train(cfg, workdir)
    monkeypatch.setattr(setup_lib, "build", real_build)
    result = train(cfg, workdir)  # space is back: resumes from step 1
    assert (result.start_step, result.end_step) == (1, 2)
    assert [r["step"] for r in read_metrics(workdir)] == [1, 2]
