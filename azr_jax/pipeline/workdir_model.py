"""A training run's checkpoint as a model: `azr-jax eval --model WORKDIR[@STEP]`.

    loaded = load_model_spec("runs/learn@40")   # or "runs/learn" (latest), "runs/learn@0"
                                                # (its base model), or any
                                                # checkpoints.load_model spec

A spec whose path (before an optional ``@STEP``) is a directory holding the trainer's
config.json is read as a workdir: its base model gives the architecture and tokenizer,
its checkpoint the parameters. ``WORKDIR@0`` is the base model itself (the one config.json's
model section names, loaded as the trainer loads it; no checkpoint holds step 0), so base
and trained models are evaluated on equal terms. Anything else goes to
``checkpoints.load_model``.
"""

from __future__ import annotations

import os

from azr_jax.errors import UserError
from azr_jax.pipeline import workdir_fs  # WORKDIR may be a bucket (gs://...)

BASE_STEP = 0  # WORKDIR@0: the run's base model, before its first update


def parse_workdir_spec(spec: str) -> tuple[str, int | None] | None:
    """(workdir, step or None) when ``spec`` names a training workdir, else None."""
    from azr_jax.pipeline.workdir_layout import CONFIG_FILE

    path, step = spec, None
    if "@" in spec and not workdir_fs.exists(spec):
        path, _, tail = spec.rpartition("@")
        if not tail.isdigit():
            if workdir_fs.isfile(workdir_fs.join(path, CONFIG_FILE)):
                raise UserError(f"{spec!r}: the part after '@' must be a step number, got {tail!r}")
            return None
        step = int(tail)
    if not workdir_fs.isfile(workdir_fs.join(path, CONFIG_FILE)):
        return None
    return path, step


def load_workdir(workdir: str, step: int | None = None, *, progress: bool = False):
    """The parameters of ``workdir``'s checkpoint ``step`` (default: latest; 0: the run's
    base model) as a ``LoadedModel`` in the run's parameter dtype; returns (loaded, step)."""
    import jax

    from azr_jax.checkpoints import TrainCheckpointer
    from azr_jax.checkpoints.loaded import LoadedModel
    from azr_jax.pipeline import setup as setup_lib
    from azr_jax.pipeline.config import config_from_json
    from azr_jax.pipeline.workdir_layout import CONFIG_FILE
    from azr_jax.rl.update import abstract_train_state
    from azr_jax.sharding import MeshConfig, make_mesh

    try:
        cfg = config_from_json(workdir_fs.read_text(workdir_fs.join(workdir, CONFIG_FILE)))
    except ValueError as e:
        raise UserError(f"{workdir}/{CONFIG_FILE} is not valid JSON ({e})") from None
    if step == BASE_STEP:
        return load_base(workdir, cfg), BASE_STEP
    ckpt = TrainCheckpointer(workdir_fs.join(workdir_fs.absolute(workdir), setup_lib.CHECKPOINT_DIR),
                             keep=cfg.trainer.keep)
    try:
        steps = sorted(ckpt.all_steps())
        if not steps:
            raise UserError(f"{workdir} has no checkpoint yet")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise UserError(f"{workdir} has no checkpoint for step {step} (saved steps: "
                            f"{', '.join(map(str, steps))})")
        model_cfg, _, tokenizer = setup_lib.load_model(cfg)  # architecture + tokenizer
        mesh = make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1), jax.local_devices())
        target = abstract_train_state(model_cfg, setup_lib.optim_config(cfg), mesh)
        state, _ = ckpt.restore(step, target)
        params = jax.device_get(state.params)
    finally:
        close = getattr(ckpt, "close", None)
        if close is not None:
            close()
    # compute in float32 like checkpoints.load_model does by default
    model_cfg = model_cfg.replace(dtype=cfg.model.param_dtype, remat="none")
    return LoadedModel(config=model_cfg, params=params, tokenizer=tokenizer), int(step)


def load_base(workdir: str, cfg):
    """The base model of the run ``cfg`` (its config.json) describes, loaded as the trainer
    loads it at start, in the run's parameter dtype like a checkpoint."""
    import jax

    from azr_jax.checkpoints.loaded import LoadedModel
    from azr_jax.pipeline import setup as setup_lib

    spec = cfg.model.path or cfg.model.preset
    try:
        model_cfg, params, tokenizer = setup_lib.load_model(cfg)
    except (UserError, OSError, ValueError, KeyError) as e:
        raise UserError(f"{workdir}@{BASE_STEP} is the run's base model {spec!r} (model section "
                        f"of its config.json), which cannot be loaded: {e}") from None
    model_cfg = model_cfg.replace(dtype=cfg.model.param_dtype, remat="none")
    return LoadedModel(config=model_cfg, params=jax.device_get(params), tokenizer=tokenizer)


def workdir_selfplay(spec: str):
    """The self-play settings (prompt format, pack, system prompt) of the run ``spec`` names,
    for evaluating it with its own solver prompts; None when ``spec`` is no workdir."""
    from azr_jax.pipeline import setup as setup_lib
    from azr_jax.pipeline.config import config_from_json
    from azr_jax.pipeline.workdir_layout import CONFIG_FILE

    parsed = parse_workdir_spec(os.fspath(spec))
    if parsed is None:
        return None
    try:
        return setup_lib.selfplay_config(config_from_json(
            workdir_fs.read_text(workdir_fs.join(parsed[0], CONFIG_FILE))))
    except ValueError as e:
        raise UserError(f"{parsed[0]}/{CONFIG_FILE} is not valid JSON ({e})") from None


def load_model_spec(spec: str, *, progress: bool = False):
    """A workdir spec (WORKDIR or WORKDIR@STEP) or any ``checkpoints.load_model`` spec."""
    parsed = parse_workdir_spec(os.fspath(spec))
    if parsed is None:
        from azr_jax.checkpoints import load_model
        from azr_jax.checkpoints.loader import check_model_spec

        try:
            check_model_spec(spec)
        except UserError as e:  # name the form this reader adds, too
            raise UserError(f"{e}, or a training workdir (WORKDIR or WORKDIR@STEP)") from None
        return load_model(spec, progress=progress)
    loaded, _ = load_workdir(*parsed, progress=progress)
    return loaded
