"""The decoder's math as pure functions of a parameter tree: every path calls these.

The update step and prefill run them inside the Flax `Transformer` (which only declares the
parameters, see `transformer.py`); decode (`sampling/decode.py`) runs them on one token per
row over the KV cache. A layer's parameters are the tree `params["layers"]` holds per layer:
{"attn_norm": {"scale"}, "attn": {"q_proj", "k_proj", "v_proj", "o_proj"[, biases]},
"mlp_norm": {"scale"}, "mlp": {"gate_proj", "up_proj", "down_proj"}}, plus "attn_post_norm"
and "mlp_post_norm" with `post_norms`. Activations carry logical sharding constraints (no-ops
without axis rules). Family differences are `ModelConfig` fields read here, never the
family's name; a layer's sliding window is a traced value (`layer_windows`), so the layers
stay one scanned body.
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.models.attention_kernels import NO_WINDOW, SlotMask, attend
from azr_jax.models.config import GLOBAL, ModelConfig, RopeScaling
from azr_jax.models.norm import rms_norm
from azr_jax.models.swiglu import gated_mlp

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


def attention(p_attn, x_btd, positions_bt, mask: SlotMask, kv_window: KVWindow, cfg: ModelConfig,
              window=None):
    """Grouped-query self-attention of x over the key slots `kv_window` returns, by the
    kernel `cfg.attention_impl` names (`attention_kernels`), within the layer's `window`."""
    q_btnh, k_btkh, v_btkh = project_qkv(p_attn, x_btd, positions_bt, cfg)
    k_bksh, v_bksh = kv_window(k_btkh, v_btkh)
    out_btnh = attend(q_btnh, k_bksh, v_bksh, mask, cfg, window)
    return project_out(p_attn, out_btnh, cfg)


def mlp(p_mlp, x_btd, cfg: ModelConfig):
    """Gated MLP: down(act(gate(x)) * up(x)), act = cfg.mlp_activation (SwiGLU, GeGLU)."""
    dt = cfg.compute_dtype
    return gated_mlp(x_btd.astype(dt), p_mlp["gate_proj"].astype(dt), p_mlp["up_proj"].astype(dt),
                     p_mlp["down_proj"].astype(dt), cfg.mlp_activation)


def norm(p_norm, x_btd, cfg: ModelConfig):
    scale_d = p_norm["scale"]
    if cfg.norm_offset:  # Gemma's (1 + w), formed in f32 as HF does
        scale_d = scale_d.astype(jnp.float32) + cfg.norm_offset
    return rms_norm(x_btd, scale_d, cfg.rms_norm_eps, cfg.compute_dtype)


def layer_windows(cfg: ModelConfig):
    """Every layer's sliding window as int32 [L] (NO_WINDOW for global layers), or None
    when no layer has one (then nothing per layer is passed and no mask is narrowed)."""
    if not cfg.sliding_windows:
        return None
    return jnp.asarray([NO_WINDOW if w == GLOBAL else w for w in cfg.attention_windows], jnp.int32)


def decoder_layer(p, x_btd, positions_bt, mask: SlotMask, kv_window: KVWindow, cfg: ModelConfig,
                  window=None):
    """One pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(.)); with
    `cfg.post_norms` each sub-layer's output is normalised too (Gemma 2's four norms).
    window: this layer's entry of `layer_windows` (None: no sliding layers)."""
    h_btd = attention(p["attn"], norm(p["attn_norm"], x_btd, cfg), positions_bt, mask, kv_window,
                      cfg, window)
    if cfg.post_norms:
        h_btd = norm(p["attn_post_norm"], h_btd, cfg)
    x_btd = x_btd + h_btd
    h_btd = mlp(p["mlp"], norm(p["mlp_norm"], x_btd, cfg), cfg)
    if cfg.post_norms:
        h_btd = norm(p["mlp_post_norm"], h_btd, cfg)
    x_btd = x_btd + h_btd
    return nn.with_logical_constraint(x_btd, ("batch", "length", "act_embed"))


def no_cache(k_btkh, v_btkh):
    """The KV window of a pass without cache: the current tokens, in the cache layout."""
    return k_btkh.transpose(0, 2, 1, 3), v_btkh.transpose(0, 2, 1, 3)


def embed_tokens(embedding_vd, tokens, cfg: ModelConfig):
    """Row lookup (times sqrt(d) with `cfg.scale_embeddings`, the factor rounded to the compute
    dtype as HF does). The table is gathered whole along vocab first: a lookup into a
    vocab-sharded table makes the SPMD partitioner replicate the gather's output."""
    dtype = cfg.compute_dtype
    table_vd = nn.with_logical_constraint(embedding_vd.astype(dtype), (None, "act_embed"))
    x = jnp.take(table_vd, tokens, axis=0)
    if cfg.scale_embeddings:
        x = x * jnp.asarray(math.sqrt(cfg.hidden_size), dtype)
    return x


def unembedding_vd(params):
    """The output projection vocab-major [V, D]: the embedding itself when tied (no copy)."""
    return params["lm_head"].T if "lm_head" in params else params["embedding"]


def softcap_logits(logits, cap: float):
    """cap * tanh(logits / cap) (Gemma 2's final soft-cap); logits as they are when cap is 0."""
    return cap * jnp.tanh(logits / cap) if cap else logits


def unembed(params, h_xd, cfg: ModelConfig):
    """f32 logits [..., V] of final hidden states, soft-capped by `cfg.final_logit_softcap`.
    Uses `lm_head` [D, V] when present (untied, or the sampler's CPU copy of a tied
    embedding), else contracts with the [V, D] embedding directly (no transposed copy of the
    largest matrix)."""
    dt = cfg.compute_dtype
    if "lm_head" in params:
        logits = jnp.einsum("...d,dv->...v", h_xd.astype(dt), params["lm_head"].astype(dt))
    else:
        logits = jnp.einsum("...d,vd->...v", h_xd.astype(dt), params["embedding"].astype(dt))
    return softcap_logits(logits.astype(jnp.float32), cfg.final_logit_softcap)
