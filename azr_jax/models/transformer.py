"""The decoder: embeddings -> scanned decoder layers -> final norm -> logits.

One call signature serves training (full sequences) and sampling (a KV cache):

    logits_btv, cache = Transformer(cfg).apply({"params": params}, tokens_bt, positions_bt,
                                               valid_bt, cache)

`valid_bt` marks real tokens (False for padding). Keys live in "slots": the current tokens
(no cache) or the cache's S slots, written at `cache.index`. A query in slot i attends to
key slot j when j <= i and slot j holds a real token; with left-padded prompts, slot order is
time order, so this is exactly causal attention over each row's own tokens.
"""

from __future__ import annotations

from typing import Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from azr_jax.models.config import ModelConfig
from azr_jax.models.layers import MLP, Attention, RMSNorm, _param

_REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_with_no_batch_dims": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


@flax.struct.dataclass
class KVCache:
    k_lbskh: jax.Array  # [layers, batch, slots, kv_heads, head_dim]
    v_lbskh: jax.Array
    valid_bs: jax.Array  # bool: slot holds a real (non-padding) token
    index: jax.Array  # int32 scalar: next slot to write

    @property
    def num_slots(self) -> int:
        return self.k_lbskh.shape[2]


def init_cache(config: ModelConfig, batch: int, num_slots: int, dtype=None) -> KVCache:
    shape = (config.num_layers, batch, num_slots, config.num_kv_heads, config.head_dim)
    dtype = dtype or config.compute_dtype
    return KVCache(k_lbskh=jnp.zeros(shape, dtype), v_lbskh=jnp.zeros(shape, dtype),
                   valid_bs=jnp.zeros((batch, num_slots), bool), index=jnp.zeros((), jnp.int32))


def attention_mask(valid_bs, index, num_queries: int):
    """[b, t, s]: key slot s is real and not after query t (which sits in slot index + t)."""
    s_idx = jnp.arange(valid_bs.shape[1])
    q_slot = index + jnp.arange(num_queries)
    return valid_bs[:, None, :] & (s_idx[None, None, :] <= q_slot[None, :, None])


def embed_tokens(embedding_vd, tokens, dtype):
    """Row lookup. The table is gathered whole along vocab first: a lookup into a
    vocab-sharded table makes the SPMD partitioner replicate the gather's output."""
    table_vd = nn.with_logical_constraint(embedding_vd.astype(dtype), (None, "act_embed"))
    return jnp.take(table_vd, tokens, axis=0)


def positions_from_valid(valid_bt):
    """Position ids for left-padded rows: 0 at each row's first real token."""
    return jnp.maximum(jnp.cumsum(valid_bt.astype(jnp.int32), axis=-1) - 1, 0)


class DecoderLayer(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x_btd, positions_bt, mask_bts, index, cache_kv):
        """Scanned over layers: x_btd is the carry, cache_kv this layer's (k, v) or None."""
        attn = Attention(self.config, name="attn")
        h_btd = RMSNorm(self.config, name="attn_norm")(x_btd)
        new_kv, (k_bskh, v_bskh) = None, (None, None)
        if cache_kv is not None:
            k_bskh, v_bskh = cache_kv

        def kv_window(k_btkh, v_btkh):
            nonlocal new_kv
            if cache_kv is None:
                return k_btkh, v_btkh
            k_new = jax.lax.dynamic_update_slice_in_dim(k_bskh, k_btkh.astype(k_bskh.dtype), index, 1)
            v_new = jax.lax.dynamic_update_slice_in_dim(v_bskh, v_btkh.astype(v_bskh.dtype), index, 1)
            new_kv = (k_new, v_new)
            return k_new, v_new

        x_btd = x_btd + attn(h_btd, positions_bt, mask_bts, kv_window)
        x_btd = x_btd + MLP(self.config, name="mlp")(RMSNorm(self.config, name="mlp_norm")(x_btd))
        x_btd = nn.with_logical_constraint(x_btd, ("batch", "length", "act_embed"))
        return x_btd, new_kv


class Transformer(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, tokens_bt, positions_bt, valid_bt, cache: Optional[KVCache] = None,
                 return_hidden: bool = False):
        c = self.config
        embedding_vd = _param(self, "embedding", (c.vocab_size, c.hidden_size), ("vocab", "embed"))
        x_btd = embed_tokens(embedding_vd, tokens_bt, c.compute_dtype)
        x_btd = nn.with_logical_constraint(x_btd, ("batch", "length", "act_embed"))

        t = tokens_bt.shape[1]
        if cache is None:
            index, mask_bts, layer_kv = jnp.zeros((), jnp.int32), attention_mask(valid_bt, 0, t), None
        else:
            index = cache.index
            valid_bs = jax.lax.dynamic_update_slice_in_dim(cache.valid_bs, valid_bt, index, 1)
            mask_bts = attention_mask(valid_bs, index, t)
            layer_kv = (cache.k_lbskh, cache.v_lbskh)

        layer_cls = DecoderLayer
        if c.remat != "none":
            layer_cls = nn.remat(layer_cls, prevent_cse=False, policy=_REMAT_POLICIES[c.remat])
        layers = nn.scan(
            layer_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, 0),
            length=c.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(c, name="layers")
        x_btd, new_kv = layers(x_btd, positions_bt, mask_bts, index, layer_kv)
        h_btd = RMSNorm(c, name="final_norm")(x_btd)

        new_cache = None
        if cache is not None:
            new_cache = KVCache(k_lbskh=new_kv[0], v_lbskh=new_kv[1], valid_bs=valid_bs, index=index + t)
        if return_hidden:
            return h_btd, new_cache
        if c.tie_embeddings:
            w_dv = embedding_vd.T
        else:
            w_dv = _param(self, "lm_head", (c.hidden_size, c.vocab_size), ("embed", "vocab"))
        logits_btv = jnp.einsum("btd,dv->btv", h_btd, w_dv.astype(c.compute_dtype))
        logits_btv = nn.with_logical_constraint(logits_btv.astype(jnp.float32), ("batch", "length", "act_vocab"))
        return logits_btv, new_cache


def unembed_matrix(params, config: ModelConfig):
    """The [d, v] output projection (the transposed embedding when tied)."""
    return params["embedding"].T if config.tie_embeddings else params["lm_head"]


def init_params(config: ModelConfig, rng, boxed: bool = False):
    """Random parameters. boxed=True keeps flax's LogicallyPartitioned boxes (for shardings)."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    variables = Transformer(config).init(rng, tokens, tokens, jnp.ones((1, 1), bool))
    params = variables["params"]
    return params if boxed else nn.meta.unbox(params)


def abstract_params(config: ModelConfig):
    """Shapes/dtypes and logical axes of the parameters without allocating them."""
    return jax.eval_shape(lambda: init_params(config, jax.random.PRNGKey(0), boxed=True))


def forward(params, config: ModelConfig, tokens_bt, valid_bt=None, return_hidden: bool = False):
    """Full-sequence forward pass (training, scoring). Returns logits_btv (f32) or hidden."""
    if valid_bt is None:
        valid_bt = jnp.ones(tokens_bt.shape, bool)
    out, _ = Transformer(config).apply({"params": params}, tokens_bt, positions_from_valid(valid_bt),
                                       valid_bt, None, return_hidden=return_hidden)
    return out
