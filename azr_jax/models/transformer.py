"""The decoder: embeddings -> scanned decoder layers -> final norm -> logits.

The Flax modules here only declare the parameters (names, shapes, logical axes, init); the
math is the pure functions of `layers.py`, which decode calls too. Training and scoring:

    logits_btv = forward(params, cfg, tokens_bt, valid_bt)

`valid_bt` marks real tokens (False for left padding); a token attends to the real tokens
at or before it (`attention_kernels.self_attention_mask`). `prefill` runs a prompt the same way and stores its keys
and values in a `KVCache` for decoding.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from azr_jax.models.attention_kernels import self_attention_mask
from azr_jax.models.cache import KVCache, write_prompt
from azr_jax.models.config import ModelConfig
from azr_jax.models.layers import decoder_layer, embed_tokens, layer_windows, no_cache, norm, unembed

_REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_with_no_batch_dims": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}
_INIT = nn.initializers.normal(stddev=0.02)


def _param(module: nn.Module, name: str, shape, axes, init=_INIT):
    dtype = module.config.params_dtype
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, dtype)


class NormParams(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self):
        ones = nn.initializers.ones
        return {"scale": _param(self, "scale", (self.config.hidden_size,), ("norm",), ones)}


class AttentionParams(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self):
        c = self.config
        d, n, k, h = c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim
        p = {"q_proj": _param(self, "q_proj", (d, n, h), ("embed", "heads", "head_dim")),
             "k_proj": _param(self, "k_proj", (d, k, h), ("embed", "kv_heads", "head_dim")),
             "v_proj": _param(self, "v_proj", (d, k, h), ("embed", "kv_heads", "head_dim")),
             "o_proj": _param(self, "o_proj", (n, h, d), ("heads", "head_dim", "embed"))}
        if c.qkv_bias:
            zeros = nn.initializers.zeros
            p["q_bias"] = _param(self, "q_bias", (n, h), ("heads", "head_dim"), zeros)
            p["k_bias"] = _param(self, "k_bias", (k, h), ("kv_heads", "head_dim"), zeros)
            p["v_bias"] = _param(self, "v_bias", (k, h), ("kv_heads", "head_dim"), zeros)
        return p


class MLPParams(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self):
        d, f = self.config.hidden_size, self.config.intermediate_size
        return {"gate_proj": _param(self, "gate_proj", (d, f), ("embed", "mlp")),
                "up_proj": _param(self, "up_proj", (d, f), ("embed", "mlp")),
                "down_proj": _param(self, "down_proj", (f, d), ("mlp", "embed"))}


class DecoderLayer(nn.Module):
    """Scanned over layers: x_btd is the carry; the output per layer is its (k_bkth, v_bkth)
    when return_kv (prefill), else None. window: the layer's sliding window, scanned over
    (`layers.layer_windows`), or None when no layer has one."""

    config: ModelConfig
    return_kv: bool = False

    @nn.compact
    def __call__(self, x_btd, positions_bt, mask, window=None):
        c = self.config
        p = {"attn_norm": NormParams(c, name="attn_norm")(), "attn": AttentionParams(c, name="attn")(),
             "mlp_norm": NormParams(c, name="mlp_norm")(), "mlp": MLPParams(c, name="mlp")()}
        if c.post_norms:
            p["attn_post_norm"] = NormParams(c, name="attn_post_norm")()
            p["mlp_post_norm"] = NormParams(c, name="mlp_post_norm")()
        kv = []

        def kv_window(k_btkh, v_btkh):
            kv.append(no_cache(k_btkh, v_btkh))
            return kv[-1]

        x_btd = decoder_layer(p, x_btd, positions_bt, mask, kv_window, c, window)
        return x_btd, (kv[0] if self.return_kv else None)


class Transformer(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, tokens_bt, positions_bt, valid_bt, return_hidden: bool = False,
                 return_kv: bool = False):
        """(logits_btv f32, or final hidden states if return_hidden; every layer's keys and
        values [L, b, k, t, h] if return_kv, else None)."""
        c = self.config
        embedding_vd = _param(self, "embedding", (c.vocab_size, c.hidden_size), ("vocab", "embed"))
        x_btd = embed_tokens(embedding_vd, tokens_bt, c)
        x_btd = nn.with_logical_constraint(x_btd, ("batch", "length", "act_embed"))
        mask = self_attention_mask(valid_bt, c.attention_impl)

        layer_cls = DecoderLayer
        if c.remat != "none":
            layer_cls = nn.remat(layer_cls, prevent_cse=False, policy=_REMAT_POLICIES[c.remat])
        windows_l = layer_windows(c)  # per-layer inputs only when layers differ
        per_layer = () if windows_l is None else (windows_l,)
        layers = nn.scan(
            layer_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, nn.broadcast) + (0,) * len(per_layer),
            length=c.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(c, return_kv, name="layers")
        x_btd, kv = layers(x_btd, positions_bt, mask, *per_layer)
        h_btd = norm(NormParams(c, name="final_norm")(), x_btd, c)
        if return_hidden:
            return h_btd, kv
        p_out = {"embedding": embedding_vd}
        if not c.tie_embeddings:
            p_out["lm_head"] = _param(self, "lm_head", (c.hidden_size, c.vocab_size), ("embed", "vocab"))
        logits_btv = nn.with_logical_constraint(unembed(p_out, h_btd, c), ("batch", "length", "act_vocab"))
        return logits_btv, kv


def positions_from_valid(valid_bt):
    """Position ids for left-padded rows: 0 at each row's first real token."""
    return jnp.maximum(jnp.cumsum(valid_bt.astype(jnp.int32), axis=-1) - 1, 0)


def init_params(config: ModelConfig, rng, boxed: bool = False):
    """Random parameters. boxed=True keeps flax's LogicallyPartitioned boxes (for shardings)."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    # The parameters do not depend on the attention kernel; XLA's traces on every backend.
    init_cfg = config.replace(attention_impl="xla")
    variables = Transformer(init_cfg).init(rng, tokens, tokens, jnp.ones((1, 1), bool))
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
                                       valid_bt, return_hidden=return_hidden)
    return out


def prefill(params, config: ModelConfig, tokens_bt, valid_bt, cache: KVCache):
    """Run left-padded prompts into an empty cache (the prompt attends only to itself).
    Returns (final hidden states h_btd, the cache with the prompt in its first t slots)."""
    h_btd, (k_lbkth, v_lbkth) = Transformer(config).apply(
        {"params": params}, tokens_bt, positions_from_valid(valid_bt), valid_bt,
        return_hidden=True, return_kv=True)
    return h_btd, write_prompt(cache, k_lbkth, v_lbkth, valid_bt)
