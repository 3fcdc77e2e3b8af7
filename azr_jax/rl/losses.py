"""Token-level policy losses, registered by name: `get("ppo_clip")(...)`.

Every loss has the signature

    loss_fn(logprobs_bt, old_logprobs_bt, advantages_bt, mask_bt, cfg,
            ref_logprobs_bt=None, entropy_bt=None, num_tokens=None, num_seqs=None)
        -> (loss, metrics)

`num_tokens` / `num_seqs` are the normalisers of the *whole* batch (default: this batch's);
passing the full batch's values to each micro-batch makes the micro-batch losses and metrics
add up exactly to the full-batch ones (gradient accumulation). Pure jnp, jit-compatible.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax.numpy as jnp

from azr_jax.errors import UserError

AGGREGATIONS = ("token_mean", "seq_mean")
KL_ESTIMATORS = ("k1", "k3")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Policy loss settings. Defaults are the official trainer's (paper branch): PPO-clip 0.2
    on both sides, no KL, entropy bonus 0.001 on the token-mean entropy (the loss is
    pg_loss - entropy_coef * entropy, as veRL's dp_actor)."""

    name: str = "ppo_clip"
    clip_eps: float = 0.2  # lower clip: ratio >= 1 - clip_eps
    clip_eps_high: Optional[float] = None  # upper clip (None: same as clip_eps)
    dual_clip: Optional[float] = None  # c > 1: bound the loss of negative-advantage tokens
    aggregation: str = "token_mean"  # token_mean | seq_mean (mean over seqs of token means)
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.001

    def __post_init__(self):
        if self.aggregation not in AGGREGATIONS:
            raise UserError(f"loss aggregation {self.aggregation!r}; expected one of {AGGREGATIONS}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise UserError(f"kl_estimator {self.kl_estimator!r}; expected one of {KL_ESTIMATORS}")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise UserError(f"dual_clip={self.dual_clip} must be > 1")
        if self.clip_eps < 0 or (self.clip_eps_high is not None and self.clip_eps_high < 0):
            raise UserError("clip_eps and clip_eps_high must be >= 0")


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


def aggregate(x_bt, mask_bt, mode: str, num_tokens=None, num_seqs=None):
    """Masked mean of per-token values: over all tokens, or per sequence then over sequences."""
    mask = mask_bt.astype(jnp.float32)
    local_tokens, local_seqs = normalisers(mask)
    if mode == "token_mean":
        denom = local_tokens if num_tokens is None else num_tokens
        return (x_bt * mask).sum() / jnp.maximum(denom, 1.0)
    per_seq = (x_bt * mask).sum(-1) / jnp.maximum(mask.sum(-1), 1.0)
    denom = local_seqs if num_seqs is None else num_seqs
    return per_seq.sum() / jnp.maximum(denom, 1.0)


def kl_penalty(logprobs_bt, ref_logprobs_bt, estimator: str):
    """Per-token KL(policy || ref) estimate from samples of the policy (Schulman's k1 / k3)."""
    log_ratio = ref_logprobs_bt - logprobs_bt
    if estimator == "k1":
        return -log_ratio
    return jnp.exp(log_ratio) - log_ratio - 1.0


def _regularise(loss, metrics, logprobs_bt, mask_bt, cfg, ref_logprobs_bt, entropy_bt, agg):
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
                  ref_logprobs_bt=None, entropy_bt=None, num_tokens=None, num_seqs=None):
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
    if cfg.dual_clip is not None:
        loss3_bt = -adv_bt * cfg.dual_clip
        dual_bt = (adv_bt < 0) & (pg_bt > loss3_bt)
        pg_bt = jnp.where(adv_bt < 0, jnp.minimum(pg_bt, loss3_bt), pg_bt)
        clipped_bt = jnp.maximum(clipped_bt, dual_bt.astype(jnp.float32))

    def agg(x_bt):
        return aggregate(x_bt, mask, cfg.aggregation, num_tokens, num_seqs)

    def token_mean(x_bt):
        return aggregate(x_bt, mask, "token_mean", num_tokens, num_seqs)

    pg_loss = agg(pg_bt)
    metrics = {
        "pg_loss": pg_loss,
        "clip_fraction": token_mean(clipped_bt),
        # k3 estimate of KL(old || new): >= 0, ~0.5 * E[log_ratio^2] near on-policy.
        "approx_kl": token_mean(ratio_bt - 1.0 - log_ratio_bt),
    }
    return _regularise(pg_loss, metrics, logprobs_bt, mask, cfg, ref_logprobs_bt, entropy_bt, agg)


@register("pg")
def policy_gradient_loss(logprobs_bt, old_logprobs_bt, advantages_bt, mask_bt, cfg: LossConfig,
                         ref_logprobs_bt=None, entropy_bt=None, num_tokens=None, num_seqs=None):
    """Plain REINFORCE surrogate -A * log p (no ratio, no clipping): a baseline for comparison."""
    mask = mask_bt.astype(jnp.float32)
    adv_bt = jnp.broadcast_to(advantages_bt, logprobs_bt.shape).astype(jnp.float32)

    def agg(x_bt):
        return aggregate(x_bt, mask, cfg.aggregation, num_tokens, num_seqs)

    pg_loss = agg(-adv_bt * logprobs_bt)
    log_ratio_bt = jnp.where(mask > 0, logprobs_bt - old_logprobs_bt, 0.0)
    metrics = {"pg_loss": pg_loss, "clip_fraction": jnp.zeros((), jnp.float32),
               "approx_kl": aggregate(jnp.exp(log_ratio_bt) - 1.0 - log_ratio_bt, mask,
                                      "token_mean", num_tokens, num_seqs)}
    return _regularise(pg_loss, metrics, logprobs_bt, mask, cfg, ref_logprobs_bt, entropy_bt, agg)
