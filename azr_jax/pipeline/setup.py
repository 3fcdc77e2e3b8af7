"""Build everything a training run needs from one config: mesh, model, tokenizer, train
state, update step, sampler settings, executor pool, buffers, checkpointer."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from azr_jax.errors import UserError
from azr_jax.executor import SandboxConfig, SandboxPool
from azr_jax.pipeline import host_exec, wandb_logger, workdir_fs
from azr_jax.pipeline.workdir_layout import CHECKPOINT_DIR

if TYPE_CHECKING:  # the real modules import JAX; `build` imports them when it runs
    from jax.sharding import Mesh

    from azr_jax.checkpoints.orbax_state import TrainCheckpointer
    from azr_jax.models.config import ModelConfig
    from azr_jax.pipeline.host_exec import HostExecPool
    from azr_jax.rl.optim import OptimConfig
    from azr_jax.rl.update import TrainState
    from azr_jax.sampling import SamplingConfig
    from azr_jax.selfplay import Buffers, SelfPlayConfig
    from azr_jax.tokenizer import Tokenizer

T = TypeVar("T")


@dataclasses.dataclass
class Env:
    model_cfg: ModelConfig
    tokenizer: Tokenizer
    selfplay: SelfPlayConfig
    sampling: SamplingConfig
    mesh: Mesh
    pool: SandboxPool | HostExecPool  # HostExecPool with several JAX processes
    buffers: Buffers
    train_state: TrainState
    update: Callable  # (TrainState, batch) -> (TrainState, metrics): rl.update.make_update_step
    checkpointer: TrainCheckpointer
    optim: OptimConfig

    def close(self):
        for thing in (self.pool, self.checkpointer):
            close = getattr(thing, "close", None)
            if close is not None:
                close()


def from_section(cls: type[T], section: Mapping[str, Any], **derived) -> T:
    """The dataclass ``cls`` from one config section: every field the section has, by the
    same name (the rest keep the dataclass default), then ``derived`` values computed from
    other fields. No field list to keep in step by hand."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in section.items() if k in names}, **derived})


def selfplay_config(cfg):
    from azr_jax.selfplay import SelfPlayConfig

    fields = {f.name for f in dataclasses.fields(SelfPlayConfig)}
    return SelfPlayConfig.from_dict({k: v for k, v in cfg.selfplay.items() if k in fields})


def optim_config(cfg):
    from azr_jax.rl.optim import OptimConfig

    return from_section(OptimConfig, cfg.optim, total_steps=max(1, cfg.trainer.steps))


def loss_config(cfg):
    from azr_jax.rl.losses import LossConfig

    return from_section(LossConfig, cfg.rl, name=cfg.rl.loss, dual_clip=cfg.rl.dual_clip or None)


def sampling_config(cfg, tokenizer, model_cfg):
    from azr_jax.sampling import SamplingConfig

    stops = tuple(tokenizer.eos_ids) or tuple(model_cfg.eos_token_ids)
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else (stops[0] if stops else 0)
    return from_section(SamplingConfig, cfg.sampling, stop_token_ids=stops, pad_token_id=pad)


def sandbox_config(cfg):
    """The executor section as a SandboxConfig, whose own checks (the isolation tiers) name
    the config key."""
    try:
        return SandboxConfig(
            workers=executor_workers(cfg.executor.workers), timeout_s=cfg.selfplay.timeout_s,
            memory_mb=cfg.executor.memory_mb, isolation=cfg.executor.get("isolation", "process"),
            grading_isolation=cfg.executor.get("grading_isolation", None))
    except ValueError as e:
        raise UserError(f"executor.{e}".replace("executor.executor.", "executor.")) from None


def check_config(cfg):
    """Cross-field checks that no single package can do."""
    from azr_jax.rl import advantages

    if cfg.rl.estimator not in advantages.names():
        raise UserError(f"unknown rl.estimator {cfg.rl.estimator!r}; known: "
                        f"{', '.join(advantages.names())}")
    from azr_jax.selfplay.prompts import check_prefixes

    check_prefixes(cfg.prefix)  # a solver prefix must not name its answer


def preflight(cfg, num_devices: int) -> None:
    """Every check that needs no weights, run before the workdir is touched (a run that
    cannot start leaves nothing behind): the cross-field checks, each section's own
    validation, the mesh against the devices present, and the model spec."""
    from azr_jax.checkpoints.loader import check_model_spec
    from azr_jax.rl import losses
    from azr_jax.sharding import MeshConfig

    check_config(cfg)
    selfplay_config(cfg)
    optim_config(cfg)
    sandbox_config(cfg)
    losses.get(loss_config(cfg).name)
    MeshConfig(data=cfg.mesh.data, fsdp=cfg.mesh.fsdp, tensor=cfg.mesh.tensor).shape(num_devices)
    check_model_spec(cfg.model.path or cfg.model.preset)
    if cfg.logging.wandb:
        wandb_logger.check(cfg.logging.wandb_mode)


def executor_workers(requested: int, cpus: int | None = None) -> int:
    """Sandbox workers for `executor.workers`: 0 (auto) = this host's cores less a reserve
    for the trainer itself (JAX dispatch, tokenising, the rollout thread): 2 cores, or 1/16
    of them on large TPU VM hosts (100-240 vCPUs)."""
    if requested > 0:
        return requested
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    return max(1, cpus - max(2, cpus // 16))


def load_model(cfg):
    """(ModelConfig, host params, tokenizer) for cfg.model.path or cfg.model.preset."""
    from azr_jax.checkpoints.loader import load_model as load
    from azr_jax.sharding import is_main_process

    spec = cfg.model.path or cfg.model.preset
    loaded = load(spec, dtype=cfg.model.param_dtype, progress=is_main_process())
    model_cfg = loaded.config.replace(dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype,
                                      remat=cfg.model.remat,
                                      attention_block=cfg.model.get("attention_block", 0),
                                      attention_impl=cfg.model.get("attention_impl", "xla"))
    return model_cfg, loaded.params, loaded.tokenizer


def build(cfg, workdir: str) -> Env:
    from azr_jax.checkpoints import TrainCheckpointer
    from azr_jax.rl.update import create_train_state, make_update_step
    from azr_jax.selfplay import Buffers
    from azr_jax.sharding import MeshConfig, make_mesh

    check_config(cfg)
    sp_cfg = selfplay_config(cfg)
    optim = optim_config(cfg)
    mesh = make_mesh(MeshConfig(data=cfg.mesh.data, fsdp=cfg.mesh.fsdp, tensor=cfg.mesh.tensor))
    model_cfg, params, tokenizer = load_model(cfg)
    if tokenizer is None:
        raise UserError(f"model {cfg.model.path or cfg.model.preset!r} has no tokenizer")
    state = create_train_state(model_cfg, params, optim, mesh)
    del params
    update = make_update_step(model_cfg, optim, loss_config(cfg), mesh)
    # one process: the local pool; several (a pod): each host grades a share of every call
    pool = host_exec.for_processes(SandboxPool(sandbox_config(cfg)))
    ckpt = TrainCheckpointer(workdir_fs.join(workdir_fs.absolute(workdir), CHECKPOINT_DIR),
                             keep=cfg.trainer.keep)
    return Env(model_cfg=model_cfg, tokenizer=tokenizer, selfplay=sp_cfg,
               sampling=sampling_config(cfg, tokenizer, model_cfg), mesh=mesh, pool=pool,
               buffers=Buffers.from_config(sp_cfg, pool), train_state=state, update=update,
               checkpointer=ckpt, optim=optim)


def restore(env: Env):
    """(step, train state, buffers) from the newest intact checkpoint in env's workdir
    (damaged newer ones are set aside, with a warning naming both steps)."""
    from azr_jax.rl.update import abstract_train_state
    from azr_jax.selfplay import Buffers
    from azr_jax.sharding import is_main_process

    target = abstract_train_state(env.model_cfg, env.optim, env.mesh)
    step, state, trainer_state = env.checkpointer.restore_newest_intact(
        target, check=lambda t: Buffers.from_dict(t["buffers"]), set_aside=is_main_process())
    return int(step), state, Buffers.from_dict(trainer_state["buffers"])
