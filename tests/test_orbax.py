"""Orbax train-state checkpoints: exact round trip across meshes, keep-N, atomic saves,
clear errors for missing and corrupted checkpoints."""

import os
import signal
import subprocess
import sys
import textwrap

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.checkpoints.orbax_state import TrainCheckpointer
from azr_jax.errors import UserError
from azr_jax.models import get_preset, init_params
from azr_jax.rl.optim import OptimConfig
from azr_jax.rl.update import abstract_train_state, create_train_state
from azr_jax.sharding import MeshConfig, make_mesh

CFG = get_preset("tiny")
OPT = OptimConfig(lr=1e-3)


def _state(mesh, seed=0):
    params = jax.device_get(init_params(CFG, jax.random.PRNGKey(seed)))
    state = create_train_state(CFG, params, OPT, mesh)
    # non-trivial optimizer moments and step, so the round trip checks real values
    mu = jax.tree.map(lambda p: p * 0.5 + 1.0, state.params)
    opt = jax.tree.map(lambda x: x, state.opt_state)
    return state.replace(step=jnp.int32(5), opt_state=_set_mu(opt, mu))


def _set_mu(opt_state, mu):
    clip_state, (adam_state, *rest) = opt_state
    return (clip_state, (adam_state._replace(mu=mu), *rest))


def _host(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def test_round_trip_onto_other_meshes_and_keep_n(tmp_path):
    mesh8 = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    state = _state(mesh8)
    want = _host(state)
    with TrainCheckpointer(tmp_path / "ck", keep=2) as ck:
        for step in (10, 20, 30):
            ck.save(step, state, {"cursor": step, "buffers": {"deduction": [["f", "x", "y"]]}})
        ck.wait()
        assert ck.all_steps() == [20, 30] and ck.latest_step() == 30
    with TrainCheckpointer(tmp_path / "ck") as ck:  # a fresh process would do this
        for devices, mesh_cfg in ((4, MeshConfig(fsdp=2, tensor=2)), (1, MeshConfig(fsdp=1))):
            mesh = make_mesh(mesh_cfg, devices=jax.devices()[:devices])
            restored, trainer = ck.restore(None, abstract_train_state(CFG, OPT, mesh))
            assert trainer == {"cursor": 30, "buffers": {"deduction": [["f", "x", "y"]]}}
            assert jax.tree.structure(restored) == jax.tree.structure(state)
            for a, b in zip(_host(restored), want):
                assert a.dtype == b.dtype and np.array_equal(a, b)
            emb = restored.params["embedding"]
            assert emb.sharding.mesh.devices.size == devices
        _, trainer = ck.restore(20, abstract_train_state(CFG, OPT, mesh))
        assert trainer["cursor"] == 20


@flax.struct.dataclass
class _TrainStateBefore202612:  # TrainState as runs saved it until TrainState.rng was dropped
    params: object
    opt_state: object
    step: jax.Array
    rng: jax.Array


def test_checkpoint_of_an_old_run_with_rng_still_restores(tmp_path):
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    state = _state(mesh)
    old = _TrainStateBefore202612(params=state.params, opt_state=state.opt_state,
                                  step=state.step, rng=jnp.arange(2, dtype=jnp.uint32))
    with TrainCheckpointer(tmp_path / "ck", async_save=False) as ck:
        ck.save(3, old, {"cursor": 3})
        restored, trainer = ck.restore(3, abstract_train_state(CFG, OPT, mesh))
    assert trainer == {"cursor": 3} and not hasattr(restored, "rng")
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(_host(restored), _host(state)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_missing_checkpoint_errors_name_the_path(tmp_path):
    mesh = make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])
    with TrainCheckpointer(tmp_path / "empty") as ck:
        with pytest.raises(UserError, match="no checkpoint found in .*empty"):
            ck.restore(None, abstract_train_state(CFG, OPT, mesh))
        ck.save(1, _state(mesh), {})
        ck.wait()
        with pytest.raises(UserError, match=r"step 7 at .*empty/7; available steps: \[1\]"):
            ck.restore(7, abstract_train_state(CFG, OPT, mesh))


def test_corrupted_checkpoint_error_names_it(tmp_path):
    mesh = make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])
    with TrainCheckpointer(tmp_path / "ck", async_save=False) as ck:
        ck.save(3, _state(mesh), {"a": 1})
    data_files = [os.path.join(root, f) for root, _, files in os.walk(tmp_path / "ck" / "3" / "state")
                  for f in files if "manifest" in f or root.endswith("d")]
    assert data_files
    for f in data_files:
        with open(f, "r+b") as fh:
            fh.write(b"\x00garbage\xff" * 8)
            fh.truncate(40)
    with TrainCheckpointer(tmp_path / "ck") as ck:
        with pytest.raises(UserError, match=r"checkpoint .*ck/3 is corrupted"):
            ck.restore(3, abstract_train_state(CFG, OPT, mesh))


_CHILD = textwrap.dedent("""
    import os, sys, time
    import jax, jax.numpy as jnp
    from orbax.checkpoint._src.path import atomicity
    from azr_jax.checkpoints.orbax_state import TrainCheckpointer
    mode = sys.argv[2]
    ck = TrainCheckpointer(sys.argv[1], keep=3, async_save=True)
    ck.save(1, {"w": jnp.full((256, 256), 1.0), "n": jnp.int32(1)}, {"good": 1})
    ck.wait()
    if mode == "before_rename":
        async def hang(self, *a, **k):  # all data written, rename not done: die here
            print("FINALIZING", flush=True)
            time.sleep(600)
        atomicity.AtomicRenameTemporaryPath.finalize = hang
    ck.save(2, {"w": jnp.full((2048, 2048), 2.0), "n": jnp.int32(2)}, {"good": 2})
    print("SAVING", flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("mode", ["before_rename", "while_writing"])
def test_killed_save_keeps_previous_checkpoint(tmp_path, mode):
    ck_dir = tmp_path / "ck"
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(ck_dir), mode], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    marker = "FINALIZING" if mode == "before_rename" else "SAVING"
    try:
        for line in child.stdout:
            if line.strip() == marker:
                break
        else:
            pytest.fail("child exited before saving")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    if mode == "before_rename":
        assert any("tmp" in name for name in os.listdir(ck_dir)), os.listdir(ck_dir)
    target = {"w": jax.ShapeDtypeStruct((256, 256), jnp.float32,
                                        sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0])),
              "n": jax.ShapeDtypeStruct((), jnp.int32,
                                        sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))}
    with TrainCheckpointer(ck_dir) as ck:
        steps = ck.all_steps()
        if mode == "before_rename":
            assert steps == [1]
        assert steps[0] == 1
        state, trainer = ck.restore(1, target)
        assert trainer == {"good": 1} and float(state["w"][0, 0]) == 1.0 and int(state["n"]) == 1
        if steps == [1, 2]:  # the kill came after the commit: step 2 must then be whole
            big = {"w": jax.ShapeDtypeStruct((2048, 2048), jnp.float32, sharding=target["w"].sharding),
                   "n": target["n"]}
            state, trainer = ck.restore(2, big)
            assert trainer == {"good": 2} and float(state["w"].min()) == 2.0
