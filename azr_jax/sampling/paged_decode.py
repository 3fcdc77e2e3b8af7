"""The paged engine's device programs: prefill prompts into pages, copy pages, and a chunk of
decode steps over the page pool (`sampling.paged` drives them from the host).

A decode step is the model's layer math (`models.layers`: norms, projections, MLP, as
`layers.decoder_layer` composes them) with the attention core over pages
(`models.paged_attention`): each row writes its token at its own position (page
table[pos // S], offset pos % S; no shared write index) and attends to its first pos + 1
slots. Rows that are not live write into NULL_PAGE. Draws use the rows' own streams
(`rows.Picker`), so tokens equal the dense path's whatever the slot, page or batch.

Data parallelism: the pool's page axis is split over the batch's mesh axes, and everything
that touches pages (writes, attention, prompt stores, copies) runs per shard (`shard_map`)
on the shard's rows, its part of the pool and local page ids; the rest of the model is the
usual GSPMD program. Without a mesh the same functions run as they are.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from azr_jax.models import ModelConfig, embed_tokens
from azr_jax.models.layers import layer_windows, mlp, norm, project_out, project_qkv
from azr_jax.models.paged_attention import paged_attention
from azr_jax.models.paged_cache import (NULL_PAGE, PagedKV, copy_pages, init_pool, write_prompts,
                                        write_token)
from azr_jax.sampling.decode import logits_from_hidden
from azr_jax.sampling.processors import policy_logprob
from azr_jax.sampling.rows import Picker, Rows, draw_next, prefill


def _per_shard(fn, in_specs, out_specs):
    """fn per data shard under the ambient mesh (`in_specs` may name `B` for the batch's mesh
    axes), or fn itself without a mesh."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return fn
    batch = nn.logical_to_mesh_axes(("batch",))[0]
    fill = lambda spec: P(*(batch if a == "B" else a for a in spec))  # noqa: E731
    is_spec = lambda x: isinstance(x, P)  # noqa: E731
    return jax.shard_map(fn, mesh=mesh, in_specs=jax.tree.map(fill, in_specs, is_leaf=is_spec),
                         out_specs=jax.tree.map(fill, out_specs, is_leaf=is_spec),
                         check_vma=False)


def _pool_spec(kv) -> P:
    """A pool buffer's spec: the page axis (third from the end) split over the batch axes."""
    return P(*([None] * (kv.ndim - 3) + ["B", None, None]))


def _layer_params(layers, i):
    if isinstance(layers, (tuple, list)):
        return layers[i]
    return jax.tree.map(lambda w: jax.lax.dynamic_index_in_dim(w, i, 0, keepdims=False), layers)


def _attend_layer(cfg, impl, window, i, q_bnh, k_bkh, v_bkh, keys, values, page_b, offset_b,
                  table_bp, lengths_b):
    """One shard: write the rows' keys and values of layer i, attend over the pages. keys and
    values: layer i's own buffers (i None: per-layer storage) or the stacked ones."""
    if i is None:  # `write_token` on a one-layer tuple
        (keys,), k_kpsh = write_token((keys,), 0, k_bkh, page_b, offset_b)
        (values,), v_kpsh = write_token((values,), 0, v_bkh, page_b, offset_b)
    else:
        keys, k_kpsh = write_token(keys, i, k_bkh, page_b, offset_b)
        values, v_kpsh = write_token(values, i, v_bkh, page_b, offset_b)
    o_bnh = paged_attention(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b, cfg, impl, window=window,
                            interpret=jax.default_backend() == "cpu")
    return o_bnh, keys, values


def paged_step(params, cfg: ModelConfig, tok_b, pos_b, live_b, pool: PagedKV, table_bp, impl: str):
    """Feed one token per row at position pos_b. Returns (hidden_bd after the final norm,
    the pool with every live row's token written)."""
    s = pool.page_size
    x_b1d = embed_tokens(params["embedding"], tok_b[:, None], cfg)
    # the host's table covers every live row's writes (`Engine.chunk_width`); the clamp keeps
    # done rows, whose positions run on, inside the table
    page_idx_b = jnp.minimum(pos_b // s, table_bp.shape[1] - 1)
    page_b = jnp.where(live_b, jnp.take_along_axis(table_bp, page_idx_b[:, None], 1)[:, 0],
                       NULL_PAGE)
    offset_b = pos_b % s
    lengths_b = jnp.where(live_b, jnp.minimum(pos_b + 1, table_bp.shape[1] * s), 1)
    windows_l = layer_windows(cfg)
    unrolled = isinstance(params["layers"], (tuple, list))

    def layer(i, carry):
        x_b1d, keys, values = carry
        p = _layer_params(params["layers"], i)
        q_b1nh, k_b1kh, v_b1kh = project_qkv(p["attn"], norm(p["attn_norm"], x_b1d, cfg),
                                             pos_b[:, None], cfg)
        layer_keys, layer_values = (keys[i], values[i]) if unrolled else (keys, values)
        window = None if windows_l is None else windows_l[i]
        fn = functools.partial(_attend_layer, cfg, impl, window, None if unrolled else i)
        b = P("B")
        pool_spec = _pool_spec(layer_keys)
        o_bnh, layer_keys, layer_values = _per_shard(
            fn, (b, b, b, pool_spec, pool_spec, b, b, b, b), (b, pool_spec, pool_spec))(
            q_b1nh[:, 0], k_b1kh[:, 0], v_b1kh[:, 0], layer_keys, layer_values, page_b, offset_b,
            table_bp, lengths_b)
        if unrolled:
            keys = keys[:i] + (layer_keys,) + keys[i + 1:]
            values = values[:i] + (layer_values,) + values[i + 1:]
        else:
            keys, values = layer_keys, layer_values
        h_b1d = project_out(p["attn"], o_bnh[:, None], cfg)
        # the residual structure of layers.decoder_layer
        if cfg.post_norms:
            h_b1d = norm(p["attn_post_norm"], h_b1d, cfg)
        x_b1d = x_b1d + h_b1d
        h_b1d = mlp(p["mlp"], norm(p["mlp_norm"], x_b1d, cfg), cfg)
        if cfg.post_norms:
            h_b1d = norm(p["mlp_post_norm"], h_b1d, cfg)
        x_b1d = nn.with_logical_constraint(x_b1d + h_b1d, ("batch", "length", "act_embed"))
        return x_b1d, keys, values

    carry = (x_b1d, pool.keys, pool.values)
    if unrolled:  # per-layer weights and pool buffers
        for i in range(cfg.num_layers):
            carry = layer(i, carry)
    else:
        carry = jax.lax.fori_loop(0, cfg.num_layers, layer, carry)
    x_b1d, keys, values = carry
    return norm(params["final_norm"], x_b1d, cfg)[:, 0], PagedKV(keys=keys, values=values)


def _advance(decode_params, cfg, pick: Picker, rows: Rows, pool, table_bp, impl):
    """`rows.advance` over pages: one step for every row; rows already done get the pad
    token and 0 log-prob and do not count."""
    live_b = ~rows.done_b
    h_bd, pool = paged_step(decode_params, cfg, rows.tok_b, rows.pos_b, live_b, pool, table_bp,
                            impl)
    rows, new_b, lp_b = draw_next(decode_params, cfg, pick, rows, h_bd)
    return rows, pool, new_b, lp_b


@functools.partial(jax.jit, static_argnames=("cfg", "steps", "impl", "rules"),
                   donate_argnames=("pool",))
def decode_chunk(decode_params, pick: Picker, rows: Rows, pool: PagedKV, table_bp, *, cfg,
                 steps: int, impl: str, rules):
    """Up to `steps` decode steps of every slot (exits early once all are done). Returns
    (rows, pool, tokens [b, steps], log-probs [b, steps], steps run)."""
    with nn.logical_axis_rules(rules):
        b = rows.tok_b.shape[0]

        def cond(carry):
            return (carry[0] < steps) & ~jnp.all(carry[1].done_b)

        def body(carry):
            j, rows, pool, toks_bk, lps_bk = carry
            rows, pool, tok_b, lp_b = _advance(decode_params, cfg, pick, rows, pool, table_bp,
                                               impl)
            toks_bk = jax.lax.dynamic_update_slice_in_dim(toks_bk, tok_b[:, None], j, 1)
            lps_bk = jax.lax.dynamic_update_slice_in_dim(lps_bk, lp_b[:, None], j, 1)
            return j + 1, rows, pool, toks_bk, lps_bk

        init = (jnp.int32(0), rows, pool, jnp.full((b, steps), pick.pad_id, jnp.int32),
                jnp.zeros((b, steps), jnp.float32))
        j, rows, pool, toks_bk, lps_bk = jax.lax.while_loop(cond, body, init)
        return rows, pool, toks_bk, lps_bk, j


def _pool_specs(pool: PagedKV):
    return jax.tree.map(_pool_spec, pool)


@functools.partial(jax.jit, static_argnames=("cfg", "rules"), donate_argnames=("pool",))
def prefill_into_pages(params, pick: Picker, pool: PagedKV, prompt_mt, valid_mt, page_mt,
                       offset_mt, row_mn, *, cfg, rules):
    """Prefill m left-padded prompts, store their tokens' keys and values at (page_mt,
    offset_mt) (local page ids of the shard that holds prompt row m), and draw token 0 of
    each prompt's n rows (row ids row_mn) from the prompt's last hidden state. Returns
    (pool, tokens [m, n], log-probs [m, n])."""
    with nn.logical_axis_rules(rules):
        h_md, cache = prefill(params, cfg, prompt_mt, valid_mt, per_layer=False,
                              num_slots=prompt_mt.shape[1])
        k_lmkth, v_lmkth = (jnp.swapaxes(x, 0, 1) for x in (cache.keys, cache.values))
        kv_spec = P(None, "B")
        pool = _per_shard(write_prompts, (_pool_specs(pool), kv_spec, kv_spec, P("B"), P("B")),
                          _pool_specs(pool))(pool, k_lmkth, v_lmkth, page_mt, offset_mt)
        logits_mv = logits_from_hidden(params, cfg, h_md)

        def draw(row_m):  # one of each prompt's rows at a time: [m, V] live, not [m n, V]
            tok_m = pick.choose(logits_mv, row_m, jnp.zeros_like(row_m))
            return tok_m, policy_logprob(logits_mv, tok_m)

        tok_nm, lp_nm = jax.lax.map(draw, row_mn.T)
        return pool, tok_nm.T, lp_nm.T


@functools.partial(jax.jit, static_argnames=("rules",), donate_argnames=("pool",))
def copy_pool_pages(pool: PagedKV, src_c, dst_c, *, rules) -> PagedKV:
    """Page dst_c[i] := src_c[i] in the shard that holds entry i (local page ids)."""
    with nn.logical_axis_rules(rules):
        return _per_shard(copy_pages, (_pool_specs(pool), P("B"), P("B")), _pool_specs(pool))(
            pool, src_c, dst_c)


@functools.partial(jax.jit, static_argnames=("cfg", "num_pages", "page_size", "per_layer",
                                             "rules"))
def new_pool(*, cfg, num_pages: int, page_size: int, per_layer: bool, rules) -> PagedKV:
    """A zero pool of `num_pages` pages in all (the page axis split over the data shards)."""
    with nn.logical_axis_rules(rules):
        pool = init_pool(cfg, num_pages, page_size, per_layer)

        def place(kv):
            axes = [None] * (kv.ndim - 3) + ["batch", None, None]
            return nn.with_logical_constraint(kv, tuple(axes))

        return jax.tree.map(place, pool)
