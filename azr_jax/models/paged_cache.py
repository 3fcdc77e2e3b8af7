"""The paged KV cache: every layer's keys and values in a pool of fixed-size pages, and a page
table per row that lists the pages holding its tokens in order.

One layer's pool is [kv_heads, pages, page_size, head_dim], the layout of JAX's Pallas paged
attention kernels (TPU and GPU), so a kernel reads a layer's pool as is. Row b's token at
position j sits in page `table_bp[b, j // page_size]`, offset `j % page_size`: positions
are slots, so no valid mask is kept (a row's length says which slots are real). As in
`models.cache`, the L layers are a tuple of L buffers (XLA:CPU reads separate buffers in
place) or one stacked [L, k, pages, page_size, h] buffer (GPU/TPU: decode's `fori_loop`).

Page `NULL_PAGE` is never given to a row: table entries past a row's pages point at it, and
rows that are not live write their token there, so a finished slot never touches a page
that has gone back to the pool. Which page belongs to whom is the host's business
(`sampling.page_pool`); the functions here only read and write pages. Under a data-parallel
mesh the page axis is split over the data shards: a shard's rows use only its own pages,
page ids (tables, NULL_PAGE) are local to the shard, and these functions run per shard
(`sampling.paged_decode`).
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp

from azr_jax.models.config import ModelConfig

NULL_PAGE = 0  # the scratch page: never allocated, written by rows that are not live


@flax.struct.dataclass
class PagedKV:
    keys: Any  # a tuple of L [k, pages, page_size, h] (per layer) or [L, k, pages, page_size, h]
    values: Any  # same as keys

    @property
    def per_layer(self) -> bool:
        return isinstance(self.keys, tuple)

    @property
    def num_pages(self) -> int:  # keys[0]: layer 0's buffer in either storage
        return self.keys[0].shape[-3]

    @property
    def page_size(self) -> int:
        return self.keys[0].shape[-2]


def init_pool(cfg: ModelConfig, num_pages: int, page_size: int, per_layer: bool,
              dtype=None) -> PagedKV:
    """An all-zero pool of `num_pages` pages (page NULL_PAGE included) in the compute dtype
    unless `dtype` is given."""
    shape = (cfg.num_kv_heads, num_pages, page_size, cfg.head_dim)
    dtype = dtype or cfg.compute_dtype
    if per_layer:
        zeros = lambda: tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers))  # noqa: E731
    else:
        zeros = lambda: jnp.zeros((cfg.num_layers,) + shape, dtype)  # noqa: E731
    return PagedKV(keys=zeros(), values=zeros())


def pool_bytes(cfg: ModelConfig, num_pages: int, page_size: int, dtype=None) -> int:
    """Device bytes of a pool (keys and values, every layer)."""
    itemsize = jnp.dtype(dtype or cfg.compute_dtype).itemsize
    return 2 * cfg.num_layers * cfg.num_kv_heads * num_pages * page_size * cfg.head_dim * itemsize


def write_token(kv, i, new_bkh, page_b, offset_b):
    """Write one token per row (`new_bkh`) of layer i into (page_b, offset_b) of `kv` (a
    pool's keys or values), in place. Returns (the updated kv, layer i's [k, pages, S, h])."""
    if isinstance(kv, tuple):
        new_kbh = jnp.swapaxes(new_bkh, 0, 1).astype(kv[i].dtype)
        layer = kv[i].at[:, page_b, offset_b, :].set(new_kbh)
        return kv[:i] + (layer,) + kv[i + 1:], layer
    # layer index and (page, offset) are split by a slice: the update is [b, k, h]
    kv = kv.at[i, :, page_b, offset_b, :].set(new_bkh.astype(kv.dtype))
    return kv, jax.lax.dynamic_index_in_dim(kv, i, 0, keepdims=False)


def write_prompts(pool: PagedKV, k_lmkth, v_lmkth, page_mt, offset_mt) -> PagedKV:
    """Store a prefill's keys and values (every layer's, [L, m, k, t, h]): token (m, t) goes
    to page page_mt[m, t] at offset_mt[m, t] (padding tokens: NULL_PAGE)."""
    def put(kv, new_lmkth):
        if isinstance(kv, tuple):
            return tuple(layer.at[:, page_mt, offset_mt, :].set(
                jnp.swapaxes(new_lmkth[i], 0, 1).astype(layer.dtype)) for i, layer in enumerate(kv))
        return kv.at[:, :, page_mt, offset_mt, :].set(
            jnp.swapaxes(new_lmkth, 1, 2).astype(kv.dtype))

    return PagedKV(keys=put(pool.keys, k_lmkth), values=put(pool.values, v_lmkth))


def copy_pages(pool: PagedKV, src_c, dst_c) -> PagedKV:
    """Page dst_c[i] := page src_c[i], every layer (padding entries: NULL_PAGE to NULL_PAGE)."""
    def move(kv):
        if isinstance(kv, tuple):
            return tuple(layer.at[:, dst_c].set(layer[:, src_c]) for layer in kv)
        return kv.at[:, :, dst_c].set(kv[:, :, src_c])

    return PagedKV(keys=move(pool.keys), values=move(pool.values))


def gather_pages(layer_kpsh, table_bp):
    """One layer's pages of every row, in token order: [b, k, pages_per_row * S, h] (the
    dense core's key layout)."""
    k, _, s, h = layer_kpsh.shape
    b, p = table_bp.shape
    x_kbpsh = layer_kpsh[:, table_bp]
    return jnp.swapaxes(x_kbpsh, 0, 1).reshape(b, k, p * s, h)
