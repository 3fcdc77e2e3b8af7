"""A training workdir's checkpoint -> a HF model directory (`azr-jax export-hf`)."""

from __future__ import annotations

import jax

from azr_jax import userfiles
from azr_jax.checkpoints import TrainCheckpointer, export_hf
from azr_jax.errors import UserError
from azr_jax.pipeline import setup as setup_lib
from azr_jax.pipeline import workdir_fs  # the workdir may be a bucket (gs://...)
from azr_jax.pipeline.config import config_from_json
from azr_jax.pipeline.workdir_layout import CHECKPOINT_DIR, CONFIG_FILE
from azr_jax.rl.update import abstract_train_state
from azr_jax.sharding import MeshConfig, make_mesh


def export_from_workdir(workdir: str, output: str, step: int | None = None,
                        dtype: str | None = None) -> int:
    """Export step `step` (default: latest) of a training workdir; returns the step."""
    config_path = workdir_fs.join(workdir, CONFIG_FILE)
    if not workdir_fs.isfile(config_path):
        raise UserError(f"{workdir} is not a training workdir (no {CONFIG_FILE})")
    cfg = config_from_json(workdir_fs.read_text(config_path))
    userfiles.check_output_dir(output, "--output")  # before the work, not after

    ckpt_dir = workdir_fs.join(workdir_fs.absolute(workdir), CHECKPOINT_DIR)
    checkpointer = TrainCheckpointer(ckpt_dir, keep=cfg.trainer.keep)
    try:
        latest = checkpointer.latest_step()
        if latest is None:
            raise UserError(f"{workdir} has no checkpoint yet")
        # The base model gives the architecture and the tokenizer; its weights are dropped.
        model_cfg, _, tokenizer = setup_lib.load_model(cfg)
        # Any saved mesh restores onto this host's devices (fully sharded over fsdp).
        mesh = make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1), jax.local_devices())
        target = abstract_train_state(model_cfg, setup_lib.optim_config(cfg), mesh)
        try:
            if step is None:  # the newest intact one; an export leaves the workdir as it is
                step, state, _ = checkpointer.restore_newest_intact(target, set_aside=False,
                                                                action="exporting")
            else:
                state, _ = checkpointer.restore(step, target)
        except FileNotFoundError:
            raise UserError(f"{workdir} has no checkpoint for step {step} (latest: {latest})") from None
        params = jax.device_get(state.params)
    finally:
        close = getattr(checkpointer, "close", None)
        if close is not None:
            close()
    export_hf(params, model_cfg, tokenizer, output, dtype=dtype)
    return int(step)
