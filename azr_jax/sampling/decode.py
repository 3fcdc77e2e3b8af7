"""One decode step (one new token per row) over the KV cache, with the model's own layer math.

Why not the Flax `Transformer`: its `nn.scan` over layers would read the cache as the scan's
input and write a new stacked cache as its output, so inside the sampler's while loop XLA
would copy the whole KV cache on every token. Here the layers run in a `fori_loop` over
stacked weights and a stacked cache (GPU/TPU), or unrolled over per-layer weights and cache
buffers (XLA:CPU, see `weight_layout.py` and `models.cache`), and each layer writes this
token's slot in place. The math is `models.layers.decoder_layer`, as in training, with the
layer's sliding window (`layers.layer_windows`) narrowing its mask when the model has some.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from azr_jax.models import KVCache, ModelConfig, attention_mask, embed_tokens, unembed
from azr_jax.models.attention_kernels import SlotMask
from azr_jax.models.cache import write_layer
from azr_jax.models.layers import decoder_layer, layer_windows, norm


def _layer_params(layers, i):
    if isinstance(layers, (tuple, list)):
        return layers[i]
    return jax.tree.map(lambda w: jax.lax.dynamic_index_in_dim(w, i, 0, keepdims=False), layers)


def decode_step(params, cfg: ModelConfig, tok_b, pos_b, cache: KVCache):
    """Feed one token per row (at position pos_b, into cache slot cache.index).

    Returns (hidden_bd after the final norm, the updated cache)."""
    index = cache.index
    b = tok_b.shape[0]
    x_b1d = embed_tokens(params["embedding"], tok_b[:, None], cfg)
    valid_bs = jax.lax.dynamic_update_slice_in_dim(cache.valid_bs, jnp.ones((b, 1), bool), index, 1)
    # dense: the XLA single-query core
    mask = SlotMask(valid_bs, attention_mask(valid_bs, index, 1), first_query_slot=index)
    windows_l = layer_windows(cfg)

    def layer(i, carry):
        x_b1d, keys, values = carry
        written = {}

        def window(k_b1kh, v_b1kh):  # this token's keys and values into layer i's slot
            written["k"], k_bksh = write_layer(keys, i, jnp.swapaxes(k_b1kh, 1, 2), index)
            written["v"], v_bksh = write_layer(values, i, jnp.swapaxes(v_b1kh, 1, 2), index)
            return k_bksh, v_bksh

        p = _layer_params(params["layers"], i)
        window_i = None if windows_l is None else windows_l[i]
        x_b1d = decoder_layer(p, x_b1d, pos_b[:, None], mask, window, cfg, window_i)
        return x_b1d, written["k"], written["v"]

    carry = (x_b1d, cache.keys, cache.values)
    if isinstance(params["layers"], (tuple, list)):
        # Per-layer weights as separate buffers (see `weight_layout`): unrolled, no slicing.
        for i in range(cfg.num_layers):
            carry = layer(i, carry)
    else:
        carry = jax.lax.fori_loop(0, cfg.num_layers, layer, carry)
    x_b1d, keys, values = carry
    h_bd = norm(params["final_norm"], x_b1d, cfg)[:, 0]
    return h_bd, KVCache(keys=keys, values=values, valid_bs=valid_bs, index=index + 1)


def logits_from_hidden(params, cfg: ModelConfig, h_bd):
    """f32 logits [b, V] (`models.unembed`, which reads the CPU layout's `lm_head` copy too)."""
    return unembed(params, h_bd, cfg)
