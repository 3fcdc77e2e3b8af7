"""One decode step (one new token per row): the model's math with a decode-friendly layout.

Why not `Transformer.apply` with the cache: its `nn.scan` over layers reads the cache as the
scan's input and writes a new stacked cache as its output, so inside the sampler's while loop
XLA copies the whole KV cache on every token; and its [b, s, k, h] cache layout makes XLA
transpose each layer's keys and values for the attention matmuls, every token. Here the
layers run in a `fori_loop` that carries a [L, b, k, s, h] cache and writes this token's slot
in place (on CPU: unrolled over per-layer weight and cache buffers, see `DecodeCache` and
`cpu_layout`), and o_proj is one [n*h, d] matmul. MLP and RMSNorm are the model's own modules; the
attention math (GQA, HF half-split RoPE, masking) mirrors `azr_jax.models.layers.Attention`
and is checked against full forward passes and transformers in the tests.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from azr_jax.models import KVCache, ModelConfig
from azr_jax.models.layers import MLP, RMSNorm, apply_rope, rope_inv_freq
from azr_jax.models.transformer import attention_mask, embed_tokens

_NEG_INF = -1e30  # as in the model: a fully masked row stays NaN-free
CACHE_AXES = ("layers", "batch", "act_kv_heads", "length", None)


@flax.struct.dataclass
class DecodeCache:
    """Keys and values of every layer, in one of two layouts:

    - stacked (GPU/TPU; the layer loop is a `fori_loop`): keys and values [L, b, k, s, h];
    - per layer (CPU, with `cpu_layout` weights; the layer loop is unrolled): tuples of L
      buffers, keys [b, k, h, s] and values [b, k, s, h]. Each layer's attention reads its
      own buffers in place (a slice of a stacked cache is copied first on XLA:CPU), and the
      scores matmul reads transposed keys ~25% faster there."""

    keys: Any
    values: Any
    valid_bs: jax.Array  # bool: slot holds a real token
    index: jax.Array  # int32 scalar: next slot to write


def from_model_cache(cache: KVCache, extra_slots: int, per_layer: bool = False) -> DecodeCache:
    """The model's [L, b, s, k, h] prefill cache in decode layout, with `extra_slots` empty
    slots appended for the new tokens (one transpose, once per call)."""
    def relayout(x_lbskh, slots_last):
        x = jnp.transpose(x_lbskh, (0, 1, 3, 4, 2) if slots_last else (0, 1, 3, 2, 4))
        slot_axis = 4 if slots_last else 3
        x = jnp.pad(x, [(0, extra_slots) if a == slot_axis else (0, 0) for a in range(5)])
        if per_layer:
            return tuple(x[i] for i in range(x.shape[0]))
        return nn.with_logical_constraint(x, CACHE_AXES)

    valid_bs = jnp.pad(cache.valid_bs, ((0, 0), (0, extra_slots)))
    return DecodeCache(keys=relayout(cache.k_lbskh, slots_last=per_layer),
                       values=relayout(cache.v_lbskh, slots_last=False),
                       valid_bs=valid_bs, index=cache.index)


def _layer_params(layers, i):
    if isinstance(layers, (tuple, list)):
        return layers[i]
    return jax.tree.map(lambda w: jax.lax.dynamic_index_in_dim(w, i, 0, keepdims=False), layers)


def _write_and_read(kv, i, new_bkh, index, slots_last=False):
    """Write this token's keys (or values) into layer i's cache slot `index`; return the
    updated cache and layer i's part of it ([b, k, s, h], or [b, k, h, s] if slots_last)."""
    if isinstance(kv, tuple):  # per layer: the layer's own buffer, updated in place
        new = new_bkh[..., None] if slots_last else new_bkh[:, :, None]
        start = (0, 0, 0, index) if slots_last else (0, 0, index, 0)
        layer_kv = jax.lax.dynamic_update_slice(kv[i], new.astype(kv[i].dtype), start)
        return kv[:i] + (layer_kv,) + kv[i + 1:], layer_kv
    kv = jax.lax.dynamic_update_slice(kv, new_bkh[None, :, :, None].astype(kv.dtype), (i, 0, 0, index, 0))
    return kv, jax.lax.dynamic_index_in_dim(kv, i, 0, keepdims=False)


@functools.partial(jax.jit, static_argnums=1)  # one compiled copy, ~4x faster than eager slicing
def cpu_layout(params, cfg: ModelConfig) -> dict:
    """Weights re-laid out for XLA:CPU's decode loop (one extra copy, made by
    `sampler.prepare_params` once for many `sample` calls, or per call).

    - layers: the stacked [L, ...] weights as a tuple of L per-layer trees. On XLA:CPU a
      dynamic slice of a stacked weight inside the loop is materialised as a copy before its
      matmul, so every token read and wrote all weights once more; separate buffers are read
      in place (~18% faster decode on SmolLM2). The KV cache follows (`DecodeCache`).
    - lm_head: a tied embedding as a [D, V] matrix: XLA:CPU's [b, d] x [v, d]^T matmul is
      ~15% slower than [b, d] x [d, v] at b = 16."""
    out = {"layers": tuple(jax.tree.map(lambda w, i=i: w[i], params["layers"])
                           for i in range(cfg.num_layers))}
    if cfg.tie_embeddings:
        out["lm_head"] = jnp.transpose(params["embedding"])
    return out


def _attention(cfg, p, x_bd, pos_b, mask_bs, keys, values, i, index):
    """GQA attention of one query per row over layer i's cache; writes its own k/v first."""
    d, n, kh, h = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    dt = cfg.compute_dtype
    x_bd = x_bd.astype(dt)
    q_bnh = jnp.einsum("bd,dnh->bnh", x_bd, p["q_proj"].astype(dt))
    k_bkh = jnp.einsum("bd,dkh->bkh", x_bd, p["k_proj"].astype(dt))
    v_bkh = jnp.einsum("bd,dkh->bkh", x_bd, p["v_proj"].astype(dt))
    if cfg.qkv_bias:
        q_bnh += p["q_bias"].astype(dt)
        k_bkh += p["k_bias"].astype(dt)
        v_bkh += p["v_bias"].astype(dt)
    inv_freq = jnp.asarray(rope_inv_freq(h, cfg.rope_theta, cfg.rope_scaling))
    q_bnh = apply_rope(q_bnh[:, None], pos_b[:, None], inv_freq)[:, 0]
    k_bkh = apply_rope(k_bkh[:, None], pos_b[:, None], inv_freq)[:, 0]
    per_layer = isinstance(keys, tuple)
    keys, k_layer = _write_and_read(keys, i, k_bkh, index, slots_last=per_layer)
    values, v_bksh = _write_and_read(values, i, v_bkh, index)

    b = x_bd.shape[0]
    q_bkgh = q_bnh.reshape(b, kh, n // kh, h) * jnp.asarray(h ** -0.5, dt)
    scores_spec = "bkgh,bkhs->bkgs" if per_layer else "bkgh,bksh->bkgs"
    scores_bkgs = jnp.einsum(scores_spec, q_bkgh, k_layer.astype(dt)).astype(jnp.float32)
    scores_bkgs = jnp.where(mask_bs[:, None, None, :], scores_bkgs, _NEG_INF)
    probs_bkgs = jax.nn.softmax(scores_bkgs, axis=-1).astype(dt)
    out_bkgh = jnp.einsum("bkgs,bksh->bkgh", probs_bkgs, v_bksh.astype(dt))
    w_o = p["o_proj"].astype(dt).reshape(n * h, d)
    return out_bkgh.reshape(b, n * h) @ w_o, keys, values


def decode_step(params, cfg: ModelConfig, tok_b, pos_b, cache: DecodeCache):
    """Feed one token per row (at position pos_b, into cache slot cache.index).

    Returns (hidden_bd after the final norm, the updated cache)."""
    dt = cfg.compute_dtype
    index = cache.index
    b = tok_b.shape[0]
    x_bd = embed_tokens(params["embedding"], tok_b, dt)
    valid_bs = jax.lax.dynamic_update_slice_in_dim(cache.valid_bs, jnp.ones((b, 1), bool), index, 1)
    mask_bs = attention_mask(valid_bs, index, 1)[:, 0]
    mlp, norm = MLP(cfg), RMSNorm(cfg)

    def layer(i, carry):
        x_bd, keys, values = carry
        p = _layer_params(params["layers"], i)
        h_bd = norm.apply({"params": p["attn_norm"]}, x_bd)
        attn_bd, keys, values = _attention(cfg, p["attn"], h_bd, pos_b, mask_bs, keys, values, i, index)
        x_bd = x_bd + attn_bd
        h_b1d = norm.apply({"params": p["mlp_norm"]}, x_bd)[:, None]
        x_bd = x_bd + mlp.apply({"params": p["mlp"]}, h_b1d)[:, 0]
        x_bd = nn.with_logical_constraint(x_bd, ("batch", "act_embed"))
        return x_bd, keys, values

    carry = (x_bd, cache.keys, cache.values)
    if isinstance(params["layers"], (tuple, list)):
        # Per-layer weights as separate buffers (see `cpu_layout`): unrolled, no slicing.
        for i in range(cfg.num_layers):
            carry = layer(i, carry)
    else:
        carry = jax.lax.fori_loop(0, cfg.num_layers, layer, carry)
    x_bd, keys, values = carry
    h_bd = norm.apply({"params": params["final_norm"]}, x_bd)
    return h_bd, DecodeCache(keys=keys, values=values, valid_bs=valid_bs, index=index + 1)


def logits_from_hidden(params, cfg: ModelConfig, h_bd):
    """f32 logits [b, V]; tied models contract with the [V, D] embedding directly (no
    transposed copy of the largest matrix)."""
    dt = cfg.compute_dtype
    if "lm_head" in params:  # untied, or a [D, V] copy made for the CPU layout (cpu_layout)
        logits_bv = jnp.einsum("bd,dv->bv", h_bd.astype(dt), params["lm_head"].astype(dt))
    else:
        logits_bv = jnp.einsum("bd,vd->bv", h_bd.astype(dt), params["embedding"].astype(dt))
    return nn.with_logical_constraint(logits_bv.astype(jnp.float32), ("batch", "act_vocab"))
