"""Token-level policy losses, registered by name: `get("ppo_clip")(...)`.

Every loss has the signature

    loss_fn(logprobs_bt, old_logprobs_bt, advantages_bt, mask_bt, cfg,
            ref_logprobs_bt=None, entropy_bt=None, weight_b=None) -> (loss, metrics)

How per-token terms become one number is the aggregation (`LossConfig.aggregation`, the
`AGGREGATIONS` registry). Every aggregation is a weighted sum sum_bt x_bt * mask_bt *
weight_b[b], with one weight per row computed over a whole mini-batch (`row_weights`); the
update step computes the weights once per mini-batch and hands each micro-batch its rows'
weights, so micro-batch losses add up exactly to the mini-batch's (gradient accumulation),
whatever the aggregation. `weight_b=None`: this batch's own weights. Pure jnp, jit-compatible.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from azr_jax.config_rules import check_fields
from azr_jax.errors import UserError

KL_ESTIMATORS = ("k1", "k3")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Policy loss settings. Defaults are the official trainer's (paper branch): PPO-clip 0.2
    on both sides, no KL, entropy bonus 0.001 on the token-mean entropy (the loss is
    pg_loss - entropy_coef * entropy, as veRL's dp_actor)."""

    name: str = "ppo_clip"
    clip_eps: float = 0.2  # lower clip: ratio >= 1 - clip_eps
    clip_eps_high: Optional[float] = None  # upper clip (None: same as clip_eps)
    dual_clip: Optional[float] = None  # c > 1 bounds negative-advantage tokens' loss; None/0: off
    # AGGREGATIONS: micro_token_mean (official: veRL's dp_actor takes the token mean of each
    # micro-batch of `micro_rows` rows and divides by the micro-batch count) | token_mean |
    # seq_mean (mean over sequences of their token means)
    aggregation: str = "micro_token_mean"
    micro_rows: int = 16  # official ppo_micro_batch_size_per_gpu (scripts/selfplay/*.sh)
    # where the PPO ratio's old log-probs come from (rl/old_logprobs.py SOURCES): "recompute"
    # (official: the trainer's model before the update) | "sampler" (the sampler's, free)
    old_logprobs: str = "recompute"
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.001

    def __post_init__(self):
        if self.aggregation not in AGGREGATIONS:
            raise UserError(f"loss aggregation {self.aggregation!r}; expected one of "
                            f"{', '.join(AGGREGATIONS)}")
        check_fields("rl", self)  # the config keys' ranges: azr_jax/config_rules.py
        from azr_jax.rl.old_logprobs import SOURCES  # the registry lives with the pass

        if self.old_logprobs not in SOURCES:
            raise UserError(f"old_logprobs {self.old_logprobs!r}; expected one of "
                            f"{', '.join(SOURCES)}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise UserError(f"kl_estimator {self.kl_estimator!r}; expected one of {KL_ESTIMATORS}")


_LOSSES: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        _LOSSES[name] = fn
        return fn
    return deco


def get(name: str) -> Callable:
    try:
        return _LOSSES[name]
    except KeyError:
        raise UserError(f"unknown policy loss {name!r}; known losses: {', '.join(sorted(_LOSSES))}") from None


def normalisers(mask_bt):
    """(num_tokens, num_seqs) of a batch: masked tokens, sequences with at least one token."""
    mask = mask_bt.astype(jnp.float32)
    return mask.sum(), (mask.sum(-1) > 0).sum().astype(jnp.float32)


def _token_mean(mask_bt, micro_rows: int):
    """Every token of the batch weighs the same: 1 / tokens."""
    return jnp.full(mask_bt.shape[:1], 1.0 / jnp.maximum(mask_bt.sum(), 1.0))


def _seq_mean(mask_bt, micro_rows: int):
    """Token mean of each sequence, then the mean over sequences with a token."""
    n_b = mask_bt.sum(-1)
    return 1.0 / (jnp.maximum(n_b, 1.0) * jnp.maximum((n_b > 0).sum(), 1))


def _micro_token_mean(mask_bt, micro_rows: int):
    """veRL's dp_actor: rows in consecutive micro-batches of `micro_rows`; the loss is each
    micro-batch's token mean divided by the number of micro-batches (its gradient
    accumulation count), so every micro-batch weighs the same whatever its token count.
    Micro-batches without a trained token (padding rows) are not counted."""
    n_b = mask_bt.sum(-1)
    seg_b = jnp.arange(n_b.shape[0]) // micro_rows
    n_g = jax.ops.segment_sum(n_b, seg_b, num_segments=-(-n_b.shape[0] // micro_rows))
    groups = jnp.maximum((n_g > 0).sum(), 1)
    return 1.0 / (jnp.maximum(n_g[seg_b], 1.0) * groups)


# name -> (mask_bt f32 [B,T], micro_rows) -> weight_b f32 [B]: each of row b's tokens counts
# weight_b[b] in the aggregate.
AGGREGATIONS: dict[str, Callable] = {
    "micro_token_mean": _micro_token_mean,
    "token_mean": _token_mean,
    "seq_mean": _seq_mean,
}


def row_weights(mask_bt, aggregation: str, micro_rows: int = 16):
    """f32 [B]: the weight of each of a row's tokens in the aggregate of a (mini-)batch."""
    return AGGREGATIONS[aggregation](mask_bt.astype(jnp.float32), micro_rows).astype(jnp.float32)


def aggregate(x_bt, mask_bt, weight_b):
    """sum_bt x_bt * mask_bt * weight_b[b]: the aggregate of per-token values."""
    return (x_bt * mask_bt * weight_b[:, None]).sum()


def kl_penalty(logprobs_bt, ref_logprobs_bt, estimator: str):
    """Per-token KL(policy || ref) estimate from samples of the policy (Schulman's k1 / k3)."""
    log_ratio = ref_logprobs_bt - logprobs_bt
    if estimator == "k1":
        return -log_ratio
    return jnp.exp(log_ratio) - log_ratio - 1.0


def _regularise(loss, metrics, logprobs_bt, mask_bt, cfg, ref_logprobs_bt, entropy_bt, agg):
    # KL and entropy are aggregated like the loss (veRL: masked_mean per micro-batch)
    if ref_logprobs_bt is not None:
        kl = agg(kl_penalty(logprobs_bt, ref_logprobs_bt, cfg.kl_estimator))
        metrics["kl"] = kl
        loss = loss + cfg.kl_coef * kl
    if entropy_bt is not None:
        ent = agg(entropy_bt)
        metrics["entropy"] = ent
        loss = loss - cfg.entropy_coef * ent
    metrics["loss"] = loss
    return loss, metrics


@register("ppo_clip")
def ppo_clip_loss(logprobs_bt, old_logprobs_bt, advantages_bt, mask_bt, cfg: LossConfig,
                  ref_logprobs_bt=None, entropy_bt=None, weight_b=None):
    """PPO clipped surrogate on tokens, optional dual clip (Ye et al. 2020), KL and entropy."""
    mask = mask_bt.astype(jnp.float32)
    adv_bt = jnp.broadcast_to(advantages_bt, logprobs_bt.shape).astype(jnp.float32)
    # Masked tokens get log-ratio 0, so padding can never overflow exp().
    log_ratio_bt = jnp.where(mask > 0, logprobs_bt - old_logprobs_bt, 0.0)
    ratio_bt = jnp.exp(log_ratio_bt)
    eps_high = cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high
    loss1_bt = -adv_bt * ratio_bt
    loss2_bt = -adv_bt * jnp.clip(ratio_bt, 1.0 - cfg.clip_eps, 1.0 + eps_high)
    pg_bt = jnp.maximum(loss1_bt, loss2_bt)
    clipped_bt = (loss2_bt > loss1_bt).astype(jnp.float32)
    if cfg.dual_clip:  # None or 0: off
        loss3_bt = -adv_bt * cfg.dual_clip
        dual_bt = (adv_bt < 0) & (pg_bt > loss3_bt)
        pg_bt = jnp.where(adv_bt < 0, jnp.minimum(pg_bt, loss3_bt), pg_bt)
        clipped_bt = jnp.maximum(clipped_bt, dual_bt.astype(jnp.float32))

    w_b = row_weights(mask, cfg.aggregation, cfg.micro_rows) if weight_b is None else weight_b

    def agg(x_bt):
        return aggregate(x_bt, mask, w_b)

    pg_loss = agg(pg_bt)
    metrics = {  # aggregated like the loss, as veRL averages its micro-batch metrics
        "pg_loss": pg_loss,
        "clip_fraction": agg(clipped_bt),
        # k3 estimate of KL(old || new): >= 0, ~0.5 * E[log_ratio^2] near on-policy.
        "approx_kl": agg(ratio_bt - 1.0 - log_ratio_bt),
    }
    return _regularise(pg_loss, metrics, logprobs_bt, mask, cfg, ref_logprobs_bt, entropy_bt, agg)


@register("pg")
def policy_gradient_loss(logprobs_bt, old_logprobs_bt, advantages_bt, mask_bt, cfg: LossConfig,
                         ref_logprobs_bt=None, entropy_bt=None, weight_b=None):
    """Plain REINFORCE surrogate -A * log p (no ratio, no clipping): a baseline for comparison."""
    mask = mask_bt.astype(jnp.float32)
    adv_bt = jnp.broadcast_to(advantages_bt, logprobs_bt.shape).astype(jnp.float32)

    w_b = row_weights(mask, cfg.aggregation, cfg.micro_rows) if weight_b is None else weight_b

    def agg(x_bt):
        return aggregate(x_bt, mask, w_b)

    pg_loss = agg(-adv_bt * logprobs_bt)
    log_ratio_bt = jnp.where(mask > 0, logprobs_bt - old_logprobs_bt, 0.0)
    metrics = {"pg_loss": pg_loss, "clip_fraction": jnp.zeros((), jnp.float32),
               "approx_kl": agg(jnp.exp(log_ratio_bt) - 1.0 - log_ratio_bt)}
    return _regularise(pg_loss, metrics, logprobs_bt, mask, cfg, ref_logprobs_bt, entropy_bt, agg)
