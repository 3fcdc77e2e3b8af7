"""AdamW with warmup + constant/cosine schedule, global-norm clipping (optax)."""

from __future__ import annotations

import dataclasses

import jax
import optax

from azr_jax.config_rules import check_fields
from azr_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings (paper: AdamW, lr 1e-6, constant schedule; veRL's AdamW weight
    decay 0.01 on every parameter: fsdp_workers.py `optim.AdamW(actor_module_fsdp.
    parameters(), ..., weight_decay=optim_config.get('weight_decay', 1e-2))`, no parameter
    groups, and the AZR trainer yaml sets no weight_decay)."""

    lr: float = 1e-6
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine
    total_steps: int = 1000  # cosine decays to end_lr_fraction * lr at this step
    end_lr_fraction: float = 0.0
    weight_decay: float = 0.01
    decay_mask: str = "all"  # DECAY_MASKS: all (official) | matrices (no norm scales, biases)
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0  # global-norm clip; <= 0 disables it
    micro_batches: int = 1  # gradient accumulation: each mini-batch is split into this many parts
    # Sequences per AdamW step (the official `ppo_mini_batch_size`, 128 of 384 in the paper
    # recipes: 3 steps per training step); 0 = the whole batch in one step.
    mini_batch_size: int = 0

    def __post_init__(self):
        if self.decay_mask not in DECAY_MASKS:
            raise UserError(f"decay_mask {self.decay_mask!r}; expected one of "
                            f"{', '.join(DECAY_MASKS)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule {self.schedule!r}; expected one of {sorted(SCHEDULES)}")
        check_fields("optim", self)  # the config keys' ranges: azr_jax/config_rules.py
        if self.total_steps < 1:  # derived from trainer.steps, not a config key
            raise UserError(f"total_steps must be >= 1, got {self.total_steps}")


def _constant(cfg: OptimConfig):
    if cfg.warmup_steps == 0:
        return optax.constant_schedule(cfg.lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps), optax.constant_schedule(cfg.lr)],
        [cfg.warmup_steps])


def _cosine(cfg: OptimConfig):
    return optax.warmup_cosine_decay_schedule(
        0.0 if cfg.warmup_steps else cfg.lr, cfg.lr, cfg.warmup_steps,
        max(cfg.total_steps, cfg.warmup_steps + 1), cfg.end_lr_fraction * cfg.lr)


SCHEDULES = {"constant": _constant, "cosine": _cosine}


def make_schedule(cfg: OptimConfig):
    return SCHEDULES[cfg.schedule](cfg)


def _decay_matrices(params):
    """Decay matrices only: no weight decay on norm scales and biases (stacked [L, D] too)."""
    def keep(path, _):
        name = str(getattr(path[-1], "key", path[-1]))
        return not (name == "scale" or name.endswith("bias"))
    return jax.tree_util.tree_map_with_path(keep, params)


def _decay_all(params):
    """Every parameter decays, as torch's AdamW over `model.parameters()` (veRL)."""
    return jax.tree.map(lambda _: True, params)


# name -> params -> bool tree (True: decayed). Always a mask, so the optimizer state has one
# structure whichever is chosen (checkpoints restore across the choice).
DECAY_MASKS = {"all": _decay_all, "matrices": _decay_matrices}


def make_optimizer(cfg: OptimConfig, updates_per_step: int = 1) -> optax.GradientTransformation:
    """AdamW (after global-norm clipping). With `updates_per_step` optimizer steps per
    training step, the schedule still counts training steps (its count // updates_per_step);
    the optimizer state is the same either way."""
    schedule = make_schedule(cfg)
    if updates_per_step > 1:
        base = schedule
        schedule = lambda count: base(count // updates_per_step)  # noqa: E731
    adamw = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                        weight_decay=cfg.weight_decay, mask=DECAY_MASKS[cfg.decay_mask])
    if cfg.grad_clip and cfg.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adamw)
    return adamw
