"""A new user's first `azr-jax train`: the CPU configs fit the devices present, a mesh that
does not fit says how to fix it, and a run that fails before it starts leaves no config.json
that would refuse the corrected command."""

import os
import subprocess
import sys

import pytest

from azr_jax import cli
from azr_jax.errors import UserError
from azr_jax.pipeline import setup as setup_lib
from azr_jax.pipeline import trainer
from azr_jax.pipeline.config import load_config
from azr_jax.sharding import MeshConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", ["tiny_cpu", "smollm2_demo", "smollm2_learn", "base"])
def test_cpu_configs_fit_one_device_and_eight(name):
    c = load_config(name).mesh
    for devices in (1, 2, 8):
        assert MeshConfig(c.data, c.fsdp, c.tensor).shape(devices)


def test_mesh_error_names_both_fixes():
    with pytest.raises(UserError) as e:
        MeshConfig(data=2, fsdp=2, tensor=2).shape(1)
    msg = str(e.value)
    assert "needs exactly 8 devices, but 1 is present" in msg
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=N" in msg
    assert "--config.mesh.fsdp=-1" in msg
    with pytest.raises(UserError, match="needs a multiple of 3 devices, but 8 are present"):
        MeshConfig(data=3, fsdp=-1).shape(8)


def test_a_mesh_that_does_not_fit_stops_before_the_workdir(tmp_path, capsys):
    work = tmp_path / "w"
    rc = cli.main(["train", "--config", "tiny_cpu", "--workdir", str(work),
                   "--config.mesh.data=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "mesh data=3 x fsdp=-1 x tensor=1 needs a multiple of 3" in err
    assert not work.exists()


@pytest.mark.parametrize("override,needle", [
    ("model.preset=no-such-model", "model 'no-such-model' not found"),
    ("model.preset=qwen2.5-7b", "has no local weights"),
    ("rl.loss=nope", "unknown policy loss 'nope'"),
    ("selfplay.reward_rule=nope", "selfplay.reward_rule='nope'"),
])
def test_setup_errors_stop_before_the_workdir(tmp_path, capsys, override, needle):
    work = tmp_path / "w"
    rc = cli.main(["train", "--config", "tiny_cpu", "--workdir", str(work), f"--config.{override}"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err, err
    assert not work.exists()


def test_a_failed_build_writes_no_config_json(tmp_path, monkeypatch):
    """Whatever fails while the run is built (here the model load) leaves no config.json:
    the corrected command is a new run, not an "incompatible config" refusal."""
    def broken(cfg):
        raise UserError("model file is damaged")

    monkeypatch.setattr(setup_lib, "load_model", broken)
    work = str(tmp_path / "w")
    bad = load_config("tiny_cpu", ["optim.lr=0.5"])
    with pytest.raises(UserError, match="damaged"):
        trainer.train(bad, work)
    assert not os.path.exists(os.path.join(work, "config.json"))
    assert trainer.check_workdir(load_config("tiny_cpu"), work) is False


def test_tiny_cpu_trains_on_one_device(tmp_path):
    """What the notebook and README say to run next, on a machine with one CPU device."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".cache", "jax"))
    work = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "azr_jax.cli", "train", "--config", "configs/tiny_cpu.py",
         "--workdir", str(work), "--config.trainer.steps=1", "--config.selfplay.num_rollouts=1",
         "--config.selfplay.batch_per_group=2", "--config.sampling.max_new_tokens=16"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (work / "config.json").exists() and "report:" in out.stdout
