"""Token log-probs (and entropies) of a sequence under the policy, without a [B,T,V] tensor.

Entry t of the result is log p(tokens_bt[:, t] | tokens_bt[:, :t]) -- the same alignment as
the sampler's log-probs; entry 0 (nothing to condition on) is 0. The vocabulary projection
runs over chunks of positions, so both the forward and the backward pass hold only
[B, chunk, V] logits at a time (Qwen's 152k vocab x 8k tokens would not fit).

The vocab part has a hand-written VJP: the forward makes one exp pass per chunk (log-softmax
and entropy from the same exponentials) and keeps only [B, T] statistics; the backward
recomputes each chunk's logits and forms d logits in one fused pass. Autodiff of the same
code under `jax.checkpoint` made ~4 exp passes and a scatter per chunk, which on CPU cost
several times the vocab matmuls. A final-logit soft-cap (Gemma 2: logits = cap * tanh(z / cap),
`ModelConfig.final_logit_softcap`) sits inside the VJP: the backward multiplies d logits by
1 - tanh^2 before the matmuls.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from azr_jax.models import ModelConfig, forward, unembedding_vd


def _transposed(x_nd):
    """x^T materialised: XLA:CPU would otherwise fold the transpose into the next dot as a
    transposed operand, a slower kernel (h^T dl: 80 -> 62 ms per 256 x 49k chunk)."""
    return jax.lax.optimization_barrier(jnp.swapaxes(x_nd, 0, 1))


def _logits(h_bcd, w_vd, softcap: float):
    """f32 logits of a chunk, soft-capped when softcap > 0; with the cap also tanh (else None)."""
    logits_bcv = jnp.einsum("bcd,vd->bcv", h_bcd, w_vd).astype(jnp.float32)
    if not softcap:
        return logits_bcv, None
    tanh_bcv = jnp.tanh(logits_bcv / softcap)
    return softcap * tanh_bcv, tanh_bcv


def _chunk_forward(h_bcd, w_vd, targets_bc, softcap):
    """(logprob, entropy, lse) of one chunk from a single exp pass over its logits."""
    logits_bcv, _ = _logits(h_bcd, w_vd, softcap)
    max_bc = jnp.max(logits_bcv, axis=-1)
    z_bcv = logits_bcv - max_bc[..., None]
    e_bcv = jnp.exp(z_bcv)
    # One variadic reduce for sum(e) and sum(e * z): XLA:CPU emits two separate reductions
    # sharing the exp ~3x slower.
    sum_bc, ez_bc = jax.lax.reduce((e_bcv, e_bcv * z_bcv), (0.0, 0.0),
                                   lambda a, b: (a[0] + b[0], a[1] + b[1]), (2,))
    log_sum_bc = jnp.log(sum_bc)
    tgt_bc = jnp.take_along_axis(z_bcv, targets_bc[..., None], axis=-1)[..., 0]
    # log p(target) = z_t - log s; entropy = log s - E_p[z]
    return tgt_bc - log_sum_bc, log_sum_bc - ez_bc / sum_bc, max_bc + log_sum_bc


def _chunk_dlogits(h_bcd, w_vd, targets_bc, lse_bc, ent_bc, g_lp_bc, g_ent_bc, softcap):
    """d loss / d logits = g_lp * (onehot - p) - g_ent * p * (log p + H), one fused pass
    (times 1 - tanh^2 through a soft-cap: the gradient of the matmul's output)."""
    logits_bcv, tanh_bcv = _logits(h_bcd, w_vd, softcap)
    logp_bcv = logits_bcv - lse_bc[..., None]
    p_bcv = jnp.exp(logp_bcv)
    onehot_bcv = jax.lax.broadcasted_iota(jnp.int32, logits_bcv.shape, 2) == targets_bc[..., None]
    coef_bcv = g_lp_bc[..., None] + g_ent_bc[..., None] * (logp_bcv + ent_bc[..., None])
    dl_bcv = jnp.where(onehot_bcv, g_lp_bc[..., None], 0.0) - p_bcv * coef_bcv
    return dl_bcv if tanh_bcv is None else dl_bcv * (1.0 - tanh_bcv * tanh_bcv)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _vocab_stats(h_nbcd, w_vd, targets_nbc, softcap: float):
    """Over chunks n: (logprob_nbc, entropy_nbc) of the targets under softmax(cap(h @ w^T))."""
    return _vocab_stats_fwd(h_nbcd, w_vd, targets_nbc, softcap)[0]


def _vocab_stats_fwd(h_nbcd, w_vd, targets_nbc, softcap):
    lp_nbc, ent_nbc, lse_nbc = jax.lax.map(lambda a: _chunk_forward(a[0], w_vd, a[1], softcap),
                                           (h_nbcd, targets_nbc))
    return (lp_nbc, ent_nbc), (h_nbcd, w_vd, targets_nbc, lse_nbc, ent_nbc)


def _vocab_stats_bwd(softcap, res, g):
    h_nbcd, w_vd, targets_nbc, lse_nbc, ent_nbc = res
    g_lp_nbc, g_ent_nbc = g

    def chunk_grads(xs):
        h_bcd, tg_bc, lse_bc, ent_bc, g_lp_bc, g_ent_bc = xs
        b, c, d = h_bcd.shape
        dl_bcv = _chunk_dlogits(h_bcd, w_vd, tg_bc, lse_bc, ent_bc, g_lp_bc, g_ent_bc, softcap)
        dl_bcv = dl_bcv.astype(h_bcd.dtype)
        dh_bcd = jnp.einsum("bcv,vd->bcd", dl_bcv, w_vd)
        # [d, v] = h^T dl with only the small h transposed; one transpose to [v, d] at the end.
        dwt_dv = jnp.matmul(_transposed(h_bcd.reshape(b * c, d)), dl_bcv.reshape(b * c, -1))
        return dwt_dv.astype(jnp.float32), dh_bcd

    xs = (h_nbcd, targets_nbc, lse_nbc, ent_nbc, g_lp_nbc, g_ent_nbc)
    # The first chunk starts the accumulator (a zero-filled [d, v] buffer cost a pass).
    dwt_dv, dh0_bcd = chunk_grads(jax.tree.map(lambda x: x[0], xs))

    def body(acc_dv, x):
        dwt, dh = chunk_grads(x)
        return acc_dv + dwt, dh

    dwt_dv, dh_rest = jax.lax.scan(body, dwt_dv, jax.tree.map(lambda x: x[1:], xs))
    dh_nbcd = jnp.concatenate([dh0_bcd[None], dh_rest], axis=0)
    return dh_nbcd, jnp.swapaxes(dwt_dv, 0, 1).astype(w_vd.dtype), None


_vocab_stats.defvjp(_vocab_stats_fwd, _vocab_stats_bwd)


def logprobs_from_hidden(h_btd, w_vd, tokens_bt, dtype, chunk: int = 256, softcap: float = 0.0):
    """(logprobs_bt, entropy_bt) aligned to tokens_bt; hidden state t predicts token t+1.
    w_vd: the output projection vocab-major, i.e. the embedding table's layout. softcap: the
    model's final-logit soft-cap (0 = none)."""
    b, t, d = h_btd.shape
    targets_bt = jnp.concatenate([tokens_bt[:, 1:], jnp.zeros((b, 1), tokens_bt.dtype)], axis=1)
    chunk = max(1, min(chunk, t))
    n = -(-t // chunk)
    pad = n * chunk - t
    h_nbcd = jnp.pad(h_btd.astype(dtype), ((0, 0), (0, pad), (0, 0))).reshape(b, n, chunk, d).swapaxes(0, 1)
    tg_nbc = jnp.pad(targets_bt, ((0, 0), (0, pad))).reshape(b, n, chunk).swapaxes(0, 1)
    lp_nbc, ent_nbc = _vocab_stats(h_nbcd, w_vd.astype(dtype), tg_nbc, float(softcap))
    lp_bt = lp_nbc.swapaxes(0, 1).reshape(b, n * chunk)[:, :t]
    ent_bt = ent_nbc.swapaxes(0, 1).reshape(b, n * chunk)[:, :t]
    # Shift right: the prediction made at t-1 scores token t; the entropy is that of the
    # distribution token t was drawn from.
    zeros = jnp.zeros((b, 1), jnp.float32)
    return (jnp.concatenate([zeros, lp_bt[:, :-1]], axis=1),
            jnp.concatenate([zeros, ent_bt[:, :-1]], axis=1))


def token_logprobs_and_entropy(params, cfg: ModelConfig, tokens_bt, valid_bt, chunk: int = 256):
    """Recompute (logprobs_bt, entropy_bt) of `tokens_bt`; both 0 where a token or its
    predecessor is padding (left-padded prompts)."""
    h_btd = forward(params, cfg, tokens_bt, valid_bt, return_hidden=True)
    # Vocab-major, so a tied embedding is used in place (no transposed copy).
    lp_bt, ent_bt = logprobs_from_hidden(h_btd, unembedding_vd(params), tokens_bt,
                                         cfg.compute_dtype, chunk, cfg.final_logit_softcap)
    prev_valid_bt = jnp.concatenate([jnp.zeros_like(valid_bt[:, :1]), valid_bt[:, :-1]], axis=1)
    keep_bt = valid_bt & prev_valid_bt
    return jnp.where(keep_bt, lp_bt, 0.0), jnp.where(keep_bt, ent_bt, 0.0)


def token_logprobs(params, cfg: ModelConfig, tokens_bt, valid_bt, chunk: int = 256):
    """log p(tokens_bt[:, t] | tokens before it) under the policy; 0 where not defined."""
    return token_logprobs_and_entropy(params, cfg, tokens_bt, valid_bt, chunk)[0]
