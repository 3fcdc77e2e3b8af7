"""The sharded, jitted RL update step: (TrainState, batch) -> (TrainState, metrics).

One call is one training step: the batch is cut into mini-batches (`OptimConfig.
mini_batch_size`; the official recipe takes 3 AdamW steps of 128 of its 384 sequences), and
for each in turn it recomputes the policy's token log-probs, applies the registered policy
loss (aggregated as `LossConfig.aggregation` says, over the mini-batch), accumulates gradients over micro-batches, clips, and applies AdamW. Parameters and
optimizer state stay in their storage dtype (f32); the forward pass computes in ModelConfig.dtype
(bf16 for mixed precision) and remats per layer as ModelConfig.remat says.

Batch (numpy or jax arrays, leading dim = global batch B, rows laid out by
pipeline.batching.build_batch: with M mini-batches, mini-batch k is rows k, k + M, ...):
  tokens_bt int32 [B,T]   prompt (left-padded) + response
  valid_bt bool [B,T]      real tokens
  loss_mask_bt [B,T]       1 on response tokens that are trained on
  advantages_b f32 [B]     one advantage per sequence, broadcast over its tokens
  old_logprobs_bt f32 [B,T] old log p(tokens_bt[:, t] | earlier), 0 where masked: the
                           sampler's, or the trainer's from `update.old_logprobs`
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding

from azr_jax.errors import UserError
from azr_jax.models import ModelConfig, abstract_params
from azr_jax.rl import losses, old_logprobs
from azr_jax.rl.logprobs import token_logprobs_and_entropy
from azr_jax.rl.minibatch import BatchLayout, split_rows
from azr_jax.rl.optim import OptimConfig, make_optimizer, make_schedule
from azr_jax.sharding import (batch_sharding, data_parallel_size, logical_shardings,
                              model_rules, replicated)

BATCH_KEYS = ("tokens_bt", "valid_bt", "loss_mask_bt", "advantages_b", "old_logprobs_bt")


@flax.struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: number of updates applied


def train_state_shardings(model_cfg: ModelConfig, optim_cfg: OptimConfig, mesh: Mesh) -> TrainState:
    """NamedSharding for every leaf: params by the logical rules, optimizer moments like
    their params, the step counter replicated."""
    params_s = logical_shardings(abstract_params(model_cfg), mesh)
    tx = make_optimizer(optim_cfg)
    abstract_p = jax.tree.map(lambda b: b.unbox(), abstract_params(model_cfg),
                              is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    opt_shapes = jax.eval_shape(tx.init, abstract_p)
    opt_s = optax.tree_map_params(tx, lambda _, s: s, opt_shapes, params_s,
                                  transform_non_params=lambda _: replicated(mesh))
    return TrainState(params=params_s, opt_state=opt_s, step=replicated(mesh))


def abstract_train_state(model_cfg: ModelConfig, optim_cfg: OptimConfig, mesh: Mesh) -> TrainState:
    """ShapeDtypeStructs with shardings: the target for `TrainCheckpointer.restore`."""
    shardings = train_state_shardings(model_cfg, optim_cfg, mesh)
    abstract_p = jax.tree.map(lambda b: b.unbox(), abstract_params(model_cfg),
                              is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    tx = make_optimizer(optim_cfg)
    shapes = TrainState(params=abstract_p, opt_state=jax.eval_shape(tx.init, abstract_p),
                        step=jax.ShapeDtypeStruct((), jnp.int32))
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)


def create_train_state(model_cfg: ModelConfig, params, optim_cfg: OptimConfig,
                       mesh: Mesh) -> TrainState:
    """Shard `params` onto `mesh` and initialise AdamW there. Device arrays already in place
    are used as they are, so the update step (which donates the state) consumes them: pass
    host arrays (or copies) if you need the originals afterwards."""
    shardings = train_state_shardings(model_cfg, optim_cfg, mesh)
    params = jax.tree.map(lambda x, s: jax.device_put(jnp.asarray(x, model_cfg.params_dtype), s),
                          params, shardings.params)
    opt_state = jax.jit(make_optimizer(optim_cfg).init, out_shardings=shardings.opt_state)(params)
    return TrainState(params=params, opt_state=opt_state,
                      step=jax.device_put(jnp.zeros((), jnp.int32), replicated(mesh)))


def make_loss_and_grad(model_cfg: ModelConfig, loss_cfg: losses.LossConfig):
    """(params, micro_batch with "loss_weight_b") -> ((loss, aux), grads)."""
    loss_fn = losses.get(loss_cfg.name)

    def objective(params, mb):
        mask_bt = mb["loss_mask_bt"].astype(jnp.float32) * mb["valid_bt"]
        lp_bt, ent_bt = token_logprobs_and_entropy(params, model_cfg, mb["tokens_bt"], mb["valid_bt"])
        old_bt = mb["old_logprobs_bt"].astype(jnp.float32)
        loss, metrics = loss_fn(lp_bt, old_bt, mb["advantages_b"][:, None], mask_bt, loss_cfg,
                                entropy_bt=ent_bt, weight_b=mb["loss_weight_b"])
        diff_bt = jnp.abs(jax.lax.stop_gradient(lp_bt) - old_bt) * mask_bt
        metrics = dict(metrics, logprob_diff_sum=diff_bt.sum(), logprob_diff_max=diff_bt.max())
        return loss, metrics

    return jax.value_and_grad(objective, has_aux=True)


def _accumulate(grad_fn, params, batch, micro: int, loss_cfg: losses.LossConfig):
    """Gradient of one mini-batch's loss, summed over `micro` micro-batches (strided rows,
    minibatch.split_rows). The aggregation's row weights come from the whole mini-batch, in
    its row order, so the sum is the mini-batch's loss whatever `micro` is."""
    mask_bt = batch["loss_mask_bt"].astype(jnp.float32) * batch["valid_bt"]
    num_tokens, _ = losses.normalisers(mask_bt)
    batch = dict(batch, loss_weight_b=losses.row_weights(mask_bt, loss_cfg.aggregation,
                                                         loss_cfg.micro_rows))
    if micro == 1:
        (_, metrics), grads = grad_fn(params, batch)
        return grads, metrics, num_tokens
    split = jax.tree.map(lambda x: split_rows(x, micro), batch)

    def body(carry, mb):
        g_acc, m_acc = carry
        (_, m), g = grad_fn(params, mb)
        g_acc = jax.tree.map(jnp.add, g_acc, g)
        m_acc = {k: (jnp.maximum if k.endswith("_max") else jnp.add)(m_acc[k], v) for k, v in m.items()}
        return (g_acc, m_acc), None

    g0 = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
    mb0 = jax.tree.map(lambda x: x[0], split)
    m_shapes = jax.eval_shape(lambda: grad_fn(params, mb0)[0][1])
    m0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), m_shapes)
    (grads, metrics), _ = jax.lax.scan(body, (g0, m0), split)
    return grads, metrics, num_tokens


def _reduce_over_mini_batches(m_k: dict, diff_name: str) -> dict:
    """Stacked [M] metrics of M optimizer steps -> one value each: maxima of `*_max`, sums of
    token counts, the first mini-batch's log-prob diffs (later ones follow updated
    parameters, so they would mix policy change into the old/trainer mismatch) as
    `{diff_name}_abs` / `{diff_name}_max`, means of the rest."""
    out = {}
    for k, v in m_k.items():
        if k.startswith("logprob_diff"):
            continue
        elif k.endswith("_max"):
            out[k] = v.max()
        elif k == "num_tokens":
            out[k] = v.sum()
        else:
            out[k] = v.mean()
    out[f"{diff_name}_abs"] = m_k["logprob_diff_sum"][0] / jnp.maximum(m_k["num_tokens"][0], 1.0)
    out[f"{diff_name}_max"] = m_k["logprob_diff_max"][0]
    return out


def make_update_step(model_cfg: ModelConfig, optim_cfg: OptimConfig,
                     loss_cfg: losses.LossConfig, mesh: Mesh):
    """Compile the update step for this mesh. Returns `update(state, batch) -> (state,
    metrics)`; `state` is donated (do not reuse it).

    One call is one training step: M = `layout.num_mini_batches(rows)` AdamW steps, one per
    mini-batch of `optim_cfg.mini_batch_size` sequences (0: M = 1), each over its own
    micro-batches with its own token-mean loss (see azr_jax.rl.minibatch for the row layout
    `pipeline.batching.build_batch(..., mini_batch_size=, row_multiple=update.layout.
    row_multiple)` produces). The lr schedule counts training steps (`state.step`), as the
    official trainer's scheduler does. Metrics are replicated f32 scalars averaged over the
    mini-batches: loss, pg_loss, clip_fraction, approx_kl, entropy, grad_norm (maxima for
    *_max), lr, num_tokens (all of them), mini_batches, and the first mini-batch's mean / max
    |old - trainer| log-prob diff before any AdamW step, named by the old log-probs' source
    (rl/old_logprobs.py: `logprob/sampler_vs_recomputed_*` when they are the sampler's).

    `update.old_logprobs(params, batch) -> (batch, metrics)` is the pass that gives the
    batch its old log-probs (`loss_cfg.old_logprobs`); call it before `update`, with the
    parameters the batch was sampled with."""
    losses.get(loss_cfg.name)  # fail early on an unknown name
    diff_name = old_logprobs.SOURCES[loss_cfg.old_logprobs].update_diff_metric
    schedule = make_schedule(optim_cfg)
    grad_fn = make_loss_and_grad(model_cfg, loss_cfg)
    micro = optim_cfg.micro_batches
    rules = model_rules(model_cfg, mesh)
    layout = BatchLayout(optim_cfg.mini_batch_size, micro * data_parallel_size(mesh))

    def step_fn(state: TrainState, batch):
        m = layout.num_mini_batches(batch["tokens_bt"].shape[0])  # static
        tx = make_optimizer(optim_cfg, updates_per_step=m)

        def one_step(carry, mini):
            params, opt_state = carry
            grads, metrics, num_tokens = _accumulate(grad_fn, params, mini, micro, loss_cfg)
            updates, opt_state = tx.update(grads, opt_state, params)
            metrics = dict(metrics, grad_norm=optax.global_norm(grads), num_tokens=num_tokens)
            return (optax.apply_updates(params, updates), opt_state), metrics

        carry = (state.params, state.opt_state)
        if m == 1:
            (params, opt_state), m_k = one_step(carry, batch)
            m_k = jax.tree.map(lambda x: x[None], m_k)
        else:
            minis = jax.tree.map(lambda x: split_rows(x, m), batch)
            (params, opt_state), m_k = jax.lax.scan(one_step, carry, minis)
        metrics = dict(_reduce_over_mini_batches(m_k, diff_name), lr=schedule(state.step),
                       mini_batches=jnp.float32(m))
        new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1)
        return new_state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), metrics)

    state_s = train_state_shardings(model_cfg, optim_cfg, mesh)
    batch_s = {k: batch_sharding(mesh) for k in BATCH_KEYS}
    jitted = jax.jit(step_fn, in_shardings=(state_s, batch_s), out_shardings=(state_s, replicated(mesh)),
                     donate_argnums=0)

    def update(state: TrainState, batch: dict):
        missing = [k for k in BATCH_KEYS if k not in batch]
        if missing:
            raise UserError(f"update batch lacks {missing}; expected keys {BATCH_KEYS}")
        b = batch["tokens_bt"].shape[0]
        if b % layout.row_multiple:
            raise UserError(f"batch size {b} must be a multiple of micro_batches ({micro}) x "
                            f"data-parallel devices ({layout.row_multiple // micro})")
        layout.num_mini_batches(b)  # a clear error for a batch not laid out in mini-batches
        # The mesh and the rules must be active while tracing, for the model's activation
        # sharding constraints.
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return jitted(state, {k: batch[k] for k in BATCH_KEYS})

    update.jitted = jitted
    update.old_logprobs = old_logprobs.make_old_logprobs(model_cfg, loss_cfg.old_logprobs,
                                                         layout, micro, mesh)
    update.rules = rules
    update.layout = layout
    return update
