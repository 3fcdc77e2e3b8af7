"""The decoder's math as pure functions of a parameter tree: every path calls these.

The update step and prefill run them inside the Flax `Transformer` (which only declares the
parameters, see `transformer.py`); decode (`sampling/decode.py`) runs them on one token per
row over the KV cache. A layer's parameters are the tree `params["layers"]` holds per layer:
{"attn_norm": {"scale"}, "attn": {"q_proj", "k_proj", "v_proj", "o_proj"[, biases]},
"mlp_norm": {"scale"}, "mlp": {"gate_proj", "up_proj", "down_proj"}}. Activations carry
logical sharding constraints (no-ops without axis rules).
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.models.attention_kernels import SlotMask, attend
from azr_jax.models.config import ModelConfig, RopeScaling
from azr_jax.models.norm import rms_norm
from azr_jax.models.swiglu import swiglu

# kv_window(k_btkh, v_btkh) -> (k_bksh, v_bksh): stores the new keys and values (in a cache,
# or nowhere) and returns the key slots the queries attend to, in the cache layout.
KVWindow = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def rope_inv_freq(head_dim: int, theta: float, scaling: RopeScaling | None) -> np.ndarray:
    """Inverse frequencies, float32, exactly as HF computes them (incl. Llama 3.1 scaling)."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    inv_freq = inv_freq.astype(np.float32)
    if scaling is None:
        return inv_freq
    low_wavelen = scaling.original_max_position_embeddings / scaling.low_freq_factor
    high_wavelen = scaling.original_max_position_embeddings / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (scaling.original_max_position_embeddings / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor)
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    is_medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(is_medium, smoothed, scaled).astype(np.float32)


def apply_rope(x_btnh, positions_bt, inv_freq_f):
    """Rotate the two halves of each head (HF `rotate_half` layout), in float32."""
    freqs_btf = positions_bt.astype(jnp.float32)[..., None] * inv_freq_f
    cos_bt1f = jnp.cos(freqs_btf)[:, :, None, :]
    sin_bt1f = jnp.sin(freqs_btf)[:, :, None, :]
    x1, x2 = jnp.split(x_btnh.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos_bt1f - x2 * sin_bt1f, x2 * cos_bt1f + x1 * sin_bt1f], axis=-1)
    return rotated.astype(x_btnh.dtype)


def project_qkv(p_attn, x_btd, positions_bt, cfg: ModelConfig):
    """(q_btnh, k_btkh, v_btkh): the projections of x, plus bias (Qwen2), with RoPE on q, k."""
    dt = cfg.compute_dtype
    x_btd = x_btd.astype(dt)
    q_btnh = jnp.einsum("btd,dnh->btnh", x_btd, p_attn["q_proj"].astype(dt))
    k_btkh = jnp.einsum("btd,dkh->btkh", x_btd, p_attn["k_proj"].astype(dt))
    v_btkh = jnp.einsum("btd,dkh->btkh", x_btd, p_attn["v_proj"].astype(dt))
    if cfg.qkv_bias:
        q_btnh += p_attn["q_bias"].astype(dt)
        k_btkh += p_attn["k_bias"].astype(dt)
        v_btkh += p_attn["v_bias"].astype(dt)
    inv_freq = jnp.asarray(rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling))
    q_btnh = apply_rope(q_btnh, positions_bt, inv_freq)
    k_btkh = apply_rope(k_btkh, positions_bt, inv_freq)
    q_btnh = nn.with_logical_constraint(q_btnh, ("batch", "length", "act_heads", None))
    return q_btnh, k_btkh, v_btkh


def project_out(p_attn, out_btnh, cfg: ModelConfig):
    """o_proj as one [n*h, d] matmul (an n, h contraction ran slower on XLA:CPU in decode)."""
    b, t, n, h = out_btnh.shape
    w_o = p_attn["o_proj"].astype(cfg.compute_dtype).reshape(n * h, cfg.hidden_size)
    return out_btnh.reshape(b, t, n * h) @ w_o


def attention(p_attn, x_btd, positions_bt, mask: SlotMask, kv_window: KVWindow, cfg: ModelConfig):
    """Grouped-query self-attention of x over the key slots `kv_window` returns, by the
    kernel `cfg.attention_impl` names (`attention_kernels`)."""
    q_btnh, k_btkh, v_btkh = project_qkv(p_attn, x_btd, positions_bt, cfg)
    k_bksh, v_bksh = kv_window(k_btkh, v_btkh)
    out_btnh = attend(q_btnh, k_bksh, v_bksh, mask, cfg.attention_impl, cfg.attention_block)
    return project_out(p_attn, out_btnh, cfg)


def mlp(p_mlp, x_btd, cfg: ModelConfig):
    """SwiGLU: down(silu(gate(x)) * up(x))."""
    dt = cfg.compute_dtype
    return swiglu(x_btd.astype(dt), p_mlp["gate_proj"].astype(dt), p_mlp["up_proj"].astype(dt),
                  p_mlp["down_proj"].astype(dt))


def norm(p_norm, x_btd, cfg: ModelConfig):
    return rms_norm(x_btd, p_norm["scale"], cfg.rms_norm_eps, cfg.compute_dtype)


def decoder_layer(p, x_btd, positions_bt, mask: SlotMask, kv_window: KVWindow, cfg: ModelConfig):
    """One pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(.))."""
    h_btd = norm(p["attn_norm"], x_btd, cfg)
    x_btd = x_btd + attention(p["attn"], h_btd, positions_bt, mask, kv_window, cfg)
    x_btd = x_btd + mlp(p["mlp"], norm(p["mlp_norm"], x_btd, cfg), cfg)
    return nn.with_logical_constraint(x_btd, ("batch", "length", "act_embed"))


def no_cache(k_btkh, v_btkh):
    """The KV window of a pass without cache: the current tokens, in the cache layout."""
    return k_btkh.transpose(0, 2, 1, 3), v_btkh.transpose(0, 2, 1, 3)


def embed_tokens(embedding_vd, tokens, dtype):
    """Row lookup. The table is gathered whole along vocab first: a lookup into a
    vocab-sharded table makes the SPMD partitioner replicate the gather's output."""
    table_vd = nn.with_logical_constraint(embedding_vd.astype(dtype), (None, "act_embed"))
    return jnp.take(table_vd, tokens, axis=0)


def unembedding_vd(params):
    """The output projection vocab-major [V, D]: the embedding itself when tied (no copy)."""
    return params["lm_head"].T if "lm_head" in params else params["embedding"]


def unembed(params, h_xd, cfg: ModelConfig):
    """f32 logits [..., V] of final hidden states. Uses `lm_head` [D, V] when present (untied,
    or the sampler's CPU copy of a tied embedding), else contracts with the [V, D] embedding
    directly (no transposed copy of the largest matrix)."""
    dt = cfg.compute_dtype
    if "lm_head" in params:
        logits = jnp.einsum("...d,dv->...v", h_xd.astype(dt), params["lm_head"].astype(dt))
    else:
        logits = jnp.einsum("...d,vd->...v", h_xd.astype(dt), params["embedding"].astype(dt))
    return logits.astype(jnp.float32)
