"""Where the PPO ratio's old log-probs come from (`LossConfig.old_logprobs`, `SOURCES`).

The official trainer recomputes them with the trainer's model right after sampling, before
any update (azr_ray_trainer.py `_compute_batch`: "recompute old_log_probs" ->
`actor_rollout_wg.compute_log_prob`), so the ratio starts at exactly 1 and the sampler's
numerics (vLLM, bf16) never enter the loss. "recompute" does the same: one jitted forward
pass of the batch (no gradient) with the parameters the rollout sampled with. "sampler"
keeps the sampler's log-probs and saves that pass.

Both log the sampler/trainer mismatch as `logprob/sampler_vs_recomputed_abs` (mean |diff|
over trained tokens) and `_max`: "recompute" over the whole batch from its own pass,
"sampler" over the first mini-batch from the update step's forward (before any AdamW step);
with bf16 sampling on an accelerator that mismatch is the ratio's bias. Under "recompute"
the update step's own first-mini-batch diff is `logprob/recomputed_vs_update_*` (0 up to
float reassociation: a check that the two passes agree).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from azr_jax.models import ModelConfig, abstract_params
from azr_jax.rl.logprobs import token_logprobs
from azr_jax.rl.minibatch import BatchLayout, split_rows
from azr_jax.sharding import batch_sharding, logical_shardings, model_rules, replicated

MISMATCH = "logprob/sampler_vs_recomputed"  # + "_abs" (mean) / "_max"


@dataclasses.dataclass(frozen=True)
class Source:
    recompute: bool  # run the forward pass before the update
    update_diff_metric: str  # the name of the update step's |old - trainer| diff (+ _abs/_max)


SOURCES = {
    "recompute": Source(recompute=True, update_diff_metric="logprob/recomputed_vs_update"),
    "sampler": Source(recompute=False, update_diff_metric=MISMATCH),
}


def _merge_rows(x_p, parts: int):
    """Inverse of minibatch.split_rows: [parts, B / parts, ...] -> [B, ...]."""
    return x_p.swapaxes(0, 1).reshape((x_p.shape[0] * x_p.shape[1],) + x_p.shape[2:])


def make_old_logprobs(model_cfg: ModelConfig, source: str, layout: BatchLayout, micro: int,
                      mesh: Mesh) -> Callable:
    """`old_logprobs(params, batch) -> (batch, metrics)` for `source`: the batch with its
    `old_logprobs_bt` replaced by the trainer's (recompute) or unchanged (sampler), and the
    mismatch metrics the pass measured (none for sampler). The pass runs the batch in
    mini-batches x `micro` chunks, the rows the update step's forward holds at once, so it
    fits wherever the update does."""
    if not SOURCES[source].recompute:
        return lambda params, batch: (batch, {})

    def recompute(params, batch):
        rows = batch["tokens_bt"].shape[0]
        chunks = layout.num_mini_batches(rows) * micro  # static
        split = {k: split_rows(batch[k], chunks) for k in ("tokens_bt", "valid_bt")}
        lp_cbt = jax.lax.map(lambda c: token_logprobs(params, model_cfg, c["tokens_bt"],
                                                       c["valid_bt"]), split)
        lp_bt = _merge_rows(lp_cbt, chunks)
        mask_bt = batch["loss_mask_bt"].astype(jnp.float32) * batch["valid_bt"]
        old_bt = jnp.where(mask_bt > 0, lp_bt, 0.0).astype(jnp.float32)
        diff_bt = jnp.abs(old_bt - batch["old_logprobs_bt"].astype(jnp.float32)) * mask_bt
        metrics = {f"{MISMATCH}_abs": diff_bt.sum() / jnp.maximum(mask_bt.sum(), 1.0),
                   f"{MISMATCH}_max": diff_bt.max()}
        return old_bt, metrics

    params_s = logical_shardings(abstract_params(model_cfg), mesh)
    rows_s = batch_sharding(mesh)
    jitted = jax.jit(recompute, in_shardings=(params_s, {k: rows_s for k in _KEYS}),
                     out_shardings=(rows_s, replicated(mesh)))
    rules = model_rules(model_cfg, mesh)

    def old_logprobs(params, batch):
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            old_bt, metrics = jitted(params, {k: batch[k] for k in _KEYS})
        return dict(batch, old_logprobs_bt=old_bt), metrics

    old_logprobs.jitted = jitted
    return old_logprobs


_KEYS = ("tokens_bt", "valid_bt", "loss_mask_bt", "old_logprobs_bt")
