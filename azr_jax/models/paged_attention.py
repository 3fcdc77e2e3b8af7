"""Decode attention over a paged KV cache: one new query per row against its pages.

Implementations (`PAGED_IMPLS`), picked per backend by `resolve_paged_impl` as
`attention_kernels.resolve_impl` picks splash or cuDNN:

- "xla": gather the row's pages into the dense core's [b, k, s, h] layout and run
  `attention.gqa_attention` (every backend; the numbers of the dense decode path, which is
  what the tests hold the kernels to). Sliding windows and soft-caps supported.
- "pallas_tpu": `jax.experimental.pallas.ops.tpu.paged_attention` (TPU). It reads keys and
  values as bfloat16 whatever their dtype, so it is chosen only for a bfloat16 model; on CPU
  it runs in TPU interpret mode (`interpret=True`), which is how the tests check it.
- "pallas_gpu": `jax.experimental.pallas.ops.gpu.paged_attention` (Triton on NVIDIA GPUs;
  `interpret=True` runs it on CPU).
- "cpu_ffi": `models.cpu_paged`, a C++ kernel built on first use and called through XLA's FFI
  (CPU, f32): each row's live pages read in place, where the gather path copies the whole
  table every step. Without a C++ compiler the CPU keeps the gather path.

No kernel knows a sliding window, so a model with sliding layers decodes through the
gather path; all apply the logit soft-cap. The Pallas kernels do not scale the scores: the
query is scaled first (cap(s * scale) = cap((q * scale) . k)); the CPU kernel takes the scale.
Under a mesh every implementation runs per data shard, on the shard's rows and its part of the
pool (`sampling.paged_decode`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from azr_jax.models import cpu_paged
from azr_jax.models.attention import gqa_attention
from azr_jax.models.config import ModelConfig
from azr_jax.models.paged_cache import gather_pages


def _largest_divisor(n: int, cap: int) -> int:
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)


def gather_attention(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b, *, scale: float,
                     softcap: float = 0.0, window=None, interpret: bool = False):
    """[b, n, h] queries (the token at position lengths_b - 1) over their rows' first
    lengths_b slots, within `window` tokens when given (a traced int32)."""
    del interpret  # plain XLA everywhere
    k_bksh, v_bksh = gather_pages(k_kpsh, table_bp), gather_pages(v_kpsh, table_bp)
    s_idx = jnp.arange(k_bksh.shape[2])
    mask_bs = s_idx[None, :] < lengths_b[:, None]
    if window is not None:
        mask_bs &= (lengths_b[:, None] - 1 - s_idx[None, :]) < window
    out_b1nh = gqa_attention(q_bnh[:, None], k_bksh, v_bksh, mask_bs[:, None], scale=scale,
                             softcap=softcap)
    return out_b1nh[:, 0]


def tpu_kernel_attention(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b, *, scale: float,
                         softcap: float = 0.0, window=None, interpret: bool = False):
    """The Pallas TPU paged-attention kernel (bfloat16 keys and values inside)."""
    assert window is None, "resolve_paged_impl keeps sliding windows off the kernels"
    from jax.experimental.pallas import tpu as pltpu  # deferred: only when the kernel runs
    from jax.experimental.pallas.ops.tpu.paged_attention import paged_attention

    ctx = pltpu.force_tpu_interpret_mode() if interpret else contextlib.nullcontext()
    with ctx:
        return paged_attention(q_bnh * jnp.asarray(scale, q_bnh.dtype), k_kpsh, v_kpsh,
                               lengths_b.astype(jnp.int32), table_bp.astype(jnp.int32),
                               pages_per_compute_block=_largest_divisor(table_bp.shape[1], 8),
                               attn_logits_soft_cap=softcap or None)


def gpu_kernel_attention(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b, *, scale: float,
                         softcap: float = 0.0, window=None, interpret: bool = False):
    """The Pallas GPU (Triton) paged-attention kernel: the row's pages split into k_splits
    partitions (a divisor of the table width), each in blocks of up to 8 pages."""
    assert window is None, "resolve_paged_impl keeps sliding windows off the kernels"
    from jax.experimental.pallas.ops.gpu.paged_attention import paged_attention

    pages = table_bp.shape[1]
    k_splits = _largest_divisor(pages, 16)
    return paged_attention(q_bnh * jnp.asarray(scale, q_bnh.dtype), k_kpsh, v_kpsh,
                           table_bp.astype(jnp.int32), lengths_b.astype(jnp.int32),
                           block_h=16,
                           pages_per_compute_block=_largest_divisor(pages // k_splits, 8),
                           k_splits=k_splits, interpret=interpret,
                           attn_logits_soft_cap=softcap or None)


PAGED_IMPLS: dict[str, Callable] = {"xla": gather_attention, "pallas_tpu": tpu_kernel_attention,
                                    "pallas_gpu": gpu_kernel_attention,
                                    "cpu_ffi": cpu_paged.kernel_attention}


def _tpu_fits(cfg: ModelConfig, page_size: int) -> bool:
    # bf16 K/V inside the kernel: exact only for a bf16 pool; TPU lanes and bf16 sublanes
    return cfg.dtype == "bfloat16" and cfg.head_dim % 128 == 0 and page_size % 16 == 0


def _gpu_fits(cfg: ModelConfig, page_size: int) -> bool:
    return cfg.head_dim % 16 == 0 and page_size % 16 == 0  # Triton dot tiles of >= 16


def _cpu_fits(cfg: ModelConfig, page_size: int) -> bool:
    del page_size  # any page size
    return jnp.dtype(cfg.compute_dtype) == jnp.float32 and cpu_paged.available()


_KERNEL_BY_BACKEND = {"tpu": ("pallas_tpu", _tpu_fits), "gpu": ("pallas_gpu", _gpu_fits),
                      "cuda": ("pallas_gpu", _gpu_fits), "cpu": ("cpu_ffi", _cpu_fits)}


def resolve_paged_impl(cfg: ModelConfig, page_size: int, backend: Optional[str] = None) -> str:
    """The backend's kernel when the model and page size fit it (no sliding windows), else
    the XLA gather path."""
    found = _KERNEL_BY_BACKEND.get(backend or jax.default_backend())
    if found is None or cfg.sliding_windows or not found[1](cfg, page_size):
        return "xla"
    return found[0]


def paged_attention(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b, cfg: ModelConfig, impl: str,
                    window=None, interpret: bool = False):
    """The model's decode attention for one layer by `impl` (a PAGED_IMPLS name): rows'
    queries [b, n, h] over their pages -> [b, n, h]. Under a mesh, call it per data shard
    (`sampling.paged_decode` does: each shard's rows over its own part of the pool)."""
    fn = functools.partial(PAGED_IMPLS[impl], scale=cfg.attention_scale,
                           softcap=cfg.attn_logit_softcap, interpret=interpret)
    if impl == "xla":
        return fn(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b, window=window)
    return fn(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b)
