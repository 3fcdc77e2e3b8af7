"""Token log-probs (and entropies) of a sequence under the policy, without a [B,T,V] tensor.

Entry t of the result is log p(tokens_bt[:, t] | tokens_bt[:, :t]) -- the same alignment as
the sampler's log-probs; entry 0 (nothing to condition on) is 0. The vocabulary projection
runs over chunks of positions under `jax.checkpoint`, so both the forward and the backward
pass hold only [B, chunk, V] logits at a time (Qwen's 152k vocab x 8k tokens would not fit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from azr_jax.models import ModelConfig, forward, unembed_matrix


def _chunk_stats(h_bcd, w_dv, targets_bc, dtype):
    logits_bcv = jnp.einsum("bcd,dv->bcv", h_bcd.astype(dtype), w_dv.astype(dtype)).astype(jnp.float32)
    lse_bc = jax.nn.logsumexp(logits_bcv, axis=-1)
    tgt_bc = jnp.take_along_axis(logits_bcv, targets_bc[..., None], axis=-1)[..., 0]
    probs_bcv = jnp.exp(logits_bcv - lse_bc[..., None])
    entropy_bc = lse_bc - jnp.sum(probs_bcv * logits_bcv, axis=-1)
    return tgt_bc - lse_bc, entropy_bc


def logprobs_from_hidden(h_btd, w_dv, tokens_bt, dtype, chunk: int = 256):
    """(logprobs_bt, entropy_bt) aligned to tokens_bt; hidden state t predicts token t+1."""
    b, t, d = h_btd.shape
    targets_bt = jnp.concatenate([tokens_bt[:, 1:], jnp.zeros((b, 1), tokens_bt.dtype)], axis=1)
    chunk = max(1, min(chunk, t))
    n = -(-t // chunk)
    pad = n * chunk - t
    h_nbcd = jnp.pad(h_btd, ((0, 0), (0, pad), (0, 0))).reshape(b, n, chunk, d).swapaxes(0, 1)
    tg_nbc = jnp.pad(targets_bt, ((0, 0), (0, pad))).reshape(b, n, chunk).swapaxes(0, 1)
    stats = jax.checkpoint(lambda h, tg: _chunk_stats(h, w_dv, tg, dtype))
    if n == 1:
        lp_bc, ent_bc = stats(h_nbcd[0], tg_nbc[0])
        lp_nbc, ent_nbc = lp_bc[None], ent_bc[None]
    else:
        lp_nbc, ent_nbc = jax.lax.map(lambda args: stats(*args), (h_nbcd, tg_nbc))
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
    lp_bt, ent_bt = logprobs_from_hidden(h_btd, unembed_matrix(params, cfg), tokens_bt,
                                         cfg.compute_dtype, chunk)
    prev_valid_bt = jnp.concatenate([jnp.zeros_like(valid_bt[:, :1]), valid_bt[:, :-1]], axis=1)
    keep_bt = valid_bt & prev_valid_bt
    return jnp.where(keep_bt, lp_bt, 0.0), jnp.where(keep_bt, ent_bt, 0.0)


def token_logprobs(params, cfg: ModelConfig, tokens_bt, valid_bt, chunk: int = 256):
    """log p(tokens_bt[:, t] | tokens before it) under the policy; 0 where not defined."""
    return token_logprobs_and_entropy(params, cfg, tokens_bt, valid_bt, chunk)[0]
