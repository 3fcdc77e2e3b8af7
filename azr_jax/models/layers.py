"""Decoder building blocks: RMSNorm, RoPE (HF half-split layout), GQA attention, SwiGLU MLP.

Parameters are declared with logical axis names (see azr_jax/sharding/rules.py); activations
carry logical constraints so the same code runs unsharded, on 8 fake CPU devices or a pod.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.models.attention import gqa_attention
from azr_jax.models.config import ModelConfig, RopeScaling
from azr_jax.models.norm import rms_norm
from azr_jax.models.swiglu import swiglu

_INIT = nn.initializers.normal(stddev=0.02)


def _param(module: nn.Module, name: str, shape, axes, init=_INIT):
    dtype = module.config.params_dtype
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, dtype)


class RMSNorm(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x_btd):
        scale_d = _param(self, "scale", (self.config.hidden_size,), ("norm",), nn.initializers.ones)
        return rms_norm(x_btd, scale_d, self.config.rms_norm_eps, self.config.compute_dtype)


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


class Attention(nn.Module):
    """Grouped-query attention over a KV window (the current tokens, or a cache)."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_btd, positions_bt, mask_bts, kv_window):
        """kv_window(k_btkh, v_btkh) -> (k_bskh, v_bskh): writes the new keys and values (into
        a cache, or not) and returns the key slots the queries attend to under mask_bts."""
        c = self.config
        d, n, k, h = c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim
        dt = c.compute_dtype
        w_q = _param(self, "q_proj", (d, n, h), ("embed", "heads", "head_dim"))
        w_k = _param(self, "k_proj", (d, k, h), ("embed", "kv_heads", "head_dim"))
        w_v = _param(self, "v_proj", (d, k, h), ("embed", "kv_heads", "head_dim"))
        w_o = _param(self, "o_proj", (n, h, d), ("heads", "head_dim", "embed"))
        x_btd = x_btd.astype(dt)
        q_btnh = jnp.einsum("btd,dnh->btnh", x_btd, w_q.astype(dt))
        k_btkh = jnp.einsum("btd,dkh->btkh", x_btd, w_k.astype(dt))
        v_btkh = jnp.einsum("btd,dkh->btkh", x_btd, w_v.astype(dt))
        if c.qkv_bias:
            zeros = nn.initializers.zeros
            q_btnh += _param(self, "q_bias", (n, h), ("heads", "head_dim"), zeros).astype(dt)
            k_btkh += _param(self, "k_bias", (k, h), ("kv_heads", "head_dim"), zeros).astype(dt)
            v_btkh += _param(self, "v_bias", (k, h), ("kv_heads", "head_dim"), zeros).astype(dt)
        inv_freq = jnp.asarray(rope_inv_freq(h, c.rope_theta, c.rope_scaling))
        q_btnh = apply_rope(q_btnh, positions_bt, inv_freq)
        k_btkh = apply_rope(k_btkh, positions_bt, inv_freq)
        q_btnh = nn.with_logical_constraint(q_btnh, ("batch", "length", "act_heads", None))
        k_bskh, v_bskh = kv_window(k_btkh, v_btkh)

        out_btnh = gqa_attention(q_btnh, k_bskh, v_bskh, mask_bts, block=c.attention_block)
        return jnp.einsum("btnh,nhd->btd", out_btnh, w_o.astype(dt))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_btd):
        c = self.config
        dt = c.compute_dtype
        w_gate = _param(self, "gate_proj", (c.hidden_size, c.intermediate_size), ("embed", "mlp"))
        w_up = _param(self, "up_proj", (c.hidden_size, c.intermediate_size), ("embed", "mlp"))
        w_down = _param(self, "down_proj", (c.intermediate_size, c.hidden_size), ("mlp", "embed"))
        return swiglu(x_btd.astype(dt), w_gate.astype(dt), w_up.astype(dt), w_down.astype(dt))
