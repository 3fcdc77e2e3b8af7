"""Which attention kernel runs the model's self-attention: `ModelConfig.attention_impl`.

- "xla": `attention.gqa_attention` (hand-written VJP, optional query blocks), every backend;
- "cudnn": `jax.nn.dot_product_attention(implementation="cudnn")`, cuDNN flash attention on
  NVIDIA GPUs (no [t, s] scores in memory, forward or backward);
- "splash": the Pallas splash attention kernel shipped with JAX (TPU; elsewhere it runs in
  Pallas interpret mode, which is how the CPU tests check it);
- "auto": the fused kernel the backend has (GPU: cudnn, TPU: splash), else xla.

The fused kernels serve self-attention over the current tokens (the update step, prefill).
Decode's single query per row over the KV cache always takes the XLA core (`SlotMask.dense_bts`
set). Left padding: the kernels only know causal masks (+ segments / right padding), so
cuDNN gets each row rotated to start at its first real token (causal masking then hides the
padding, which sits after every real query) and splash gets segment ids (padding 0, tokens 1).
Under a mesh the splash kernel runs per shard (`shard_map` over batch and heads); cuDNN's
custom call carries its own partitioning rules.

Every kernel takes the config's options (`attend`): the score scale, the logit soft-cap (splash
and XLA; cuDNN has none, so "auto" picks XLA on GPU for a soft-capped model) and the layer's
sliding window. Inside the layer scan the window is a traced per-layer value: the XLA core
narrows its dense mask with it; the fused kernels, whose masks are static, run through
`lax.switch` over the config's distinct windows (a model with one kind of layer has no switch).
"""

from __future__ import annotations

from typing import Callable, Optional

import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from azr_jax.models.attention import attention_mask, gqa_attention
from azr_jax.models.config import ATTENTION_IMPLS as IMPLS
from azr_jax.models.config import GLOBAL, ModelConfig

_AUTO = {"gpu": "cudnn", "cuda": "cudnn", "tpu": "splash"}
SPLASH_BLOCK = 128  # query and key tokens per kernel block (TPU lanes: a multiple of 128)
CUDNN_IMPLEMENTATION = "cudnn"  # tests run the same wrapper with "xla" on CPU
NO_WINDOW = 2 ** 31 - 1  # a global layer's traced window: farther than any two slots


@flax.struct.dataclass
class SlotMask:
    """Which key slots each query may attend to. valid_bs marks slots holding real tokens.
    dense_bts, the [b, t, s] mask of the XLA core, is None for self-attention over the
    current tokens that a fused kernel masks itself (causal over valid_bs, slot i = token i)."""

    valid_bs: jax.Array
    dense_bts: Optional[jax.Array] = None
    first_query_slot: jax.Array | int = 0  # the key slot of query 0 (decode: the write index)

    def within(self, window) -> "SlotMask":
        """The dense mask narrowed to keys fewer than `window` slots before their query
        (a row's real tokens sit in consecutive slots, so slots count tokens)."""
        if self.dense_bts is None:
            return self
        _, t, s = self.dense_bts.shape
        q_slot_t = self.first_query_slot + jnp.arange(t)
        near_ts = (q_slot_t[:, None] - jnp.arange(s)[None, :]) < window
        return self.replace(dense_bts=self.dense_bts & near_ts[None])


def resolve_impl(impl: str, backend: Optional[str] = None, softcap: float = 0.0) -> str:
    """The implementation that runs: "auto" picks by backend (default: JAX's) among the
    kernels that can apply a logit soft-cap when `softcap` is set."""
    if impl not in IMPLS:
        raise ValueError(f"attention_impl={impl!r}; expected one of {IMPLS}")
    if impl == "cudnn" and softcap:
        raise ValueError("attention_impl='cudnn' has no attention-logit soft-cap; use xla or splash")
    if impl != "auto":
        return impl
    found = _AUTO.get(backend or jax.default_backend(), "xla")
    return "xla" if found == "cudnn" and softcap else found


def self_attention_mask(valid_bt, impl: str) -> SlotMask:
    """The mask of a pass over t tokens without cache (update step, prefill)."""
    if resolve_impl(impl) == "xla":
        return SlotMask(valid_bt, attention_mask(valid_bt, 0, valid_bt.shape[1]))
    return SlotMask(valid_bt)


def _rotate(x_bt_, shift_b):
    """Row b rotated left by shift_b[b] along axis 1 (negative: right)."""
    t = x_bt_.shape[1]
    idx_bt = (jnp.arange(t)[None, :] + shift_b[:, None]) % t
    idx = idx_bt.reshape(idx_bt.shape + (1,) * (x_bt_.ndim - 2))
    return jnp.take_along_axis(x_bt_, idx, axis=1)


def cudnn_attention(q_btnh, k_bksh, v_bksh, valid_bt, *, scale: Optional[float] = None,
                    softcap: float = 0.0, window: int = GLOBAL):
    """cuDNN flash attention, causal (within `window` tokens when set), GQA native. Each row is
    rotated so its real tokens come first (contiguous real tokens per row: left padding, then
    possibly right padding)."""
    assert not softcap, "resolve_impl keeps soft-capped models off cuDNN"
    first_b = jnp.argmax(valid_bt, axis=1).astype(jnp.int32)  # 0 for an empty row
    q = _rotate(q_btnh, first_b)
    k = _rotate(jnp.swapaxes(k_bksh, 1, 2), first_b).astype(q_btnh.dtype)
    v = _rotate(jnp.swapaxes(v_bksh, 1, 2), first_b).astype(q_btnh.dtype)
    out_btnh = jax.nn.dot_product_attention(q, k, v, scale=scale, is_causal=True,
                                            local_window_size=(window - 1, 0) if window else None,
                                            implementation=CUDNN_IMPLEMENTATION)
    return _rotate(out_btnh, -first_b)


def _splash_kernel(num_heads: int, t: int, block: int, interpret: bool, softcap: float, window: int):
    """Built per trace, never cached: its mask tables are arrays of the trace that builds it
    (a cached kernel leaks them into the next one)."""
    # Deferred: Pallas' TPU ops are only needed when splash runs.
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    one = (lambda: sm.LocalMask((t, t), window_size=(window - 1, 0), offset=0)) if window else (
        lambda: sm.CausalMask((t, t)))
    mask = sm.MultiHeadMask([one() for _ in range(num_heads)])
    sizes = sk.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block,
                          block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
                          block_q_dq=block, block_kv_dq=block)
    kernel = sk.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                                attn_logits_soft_cap=softcap or None, interpret=interpret)
    return kernel, sk.SegmentIds


def splash_attention(q_btnh, k_bksh, v_bksh, valid_bt, block: Optional[int] = None, *,
                     scale: Optional[float] = None, softcap: float = 0.0, window: int = GLOBAL):
    """The splash kernel on one shard: causal (within `window` tokens when set), soft-capped
    when `softcap` is set, left padding as segment ids (padding tokens attend only to
    padding, finite and unused), t padded up to a multiple of the block."""
    block = block or SPLASH_BLOCK
    b, t, n, h = q_btnh.shape
    pad = -t % block
    kernel, segment_ids = _splash_kernel(n, t + pad, block, jax.default_backend() != "tpu",
                                         softcap, window)
    scale = h ** -0.5 if scale is None else scale
    q_bnth = jnp.swapaxes(q_btnh * jnp.asarray(scale, q_btnh.dtype), 1, 2)
    pad_t = lambda x, axis: jnp.pad(x, [(0, pad) if a == axis else (0, 0) for a in range(x.ndim)])
    seg_bt = pad_t(valid_bt.astype(jnp.int32), 1)
    one_row = lambda q, k, v, seg: kernel(q, k, v, segment_ids=segment_ids(seg, seg))
    out_bnth = jax.vmap(one_row)(pad_t(q_bnth, 2), pad_t(k_bksh.astype(q_btnh.dtype), 2),
                                 pad_t(v_bksh.astype(q_btnh.dtype), 2), seg_bt)
    return jnp.swapaxes(out_bnth[:, :, :t], 1, 2)


def per_shard(fn: Callable):
    """fn(q_btnh, k_bksh, v_bksh, valid_bt) run per shard under the ambient mesh (batch and
    heads split as the logical rules say; heads only when q and kv heads split alike, so each
    shard holds whole query groups), or as is without a mesh."""
    def run(q_btnh, k_bksh, v_bksh, valid_bt):
        mesh = jax.sharding.get_abstract_mesh()
        if mesh.empty:
            return fn(q_btnh, k_bksh, v_bksh, valid_bt)
        batch, heads, kv_heads = nn.logical_to_mesh_axes(("batch", "act_heads", "act_kv_heads"))
        if heads != kv_heads:
            heads = kv_heads = None
        return jax.shard_map(fn, mesh=mesh, in_specs=(P(batch, None, heads, None),
                                                      P(batch, kv_heads, None, None),
                                                      P(batch, kv_heads, None, None), P(batch, None)),
                             out_specs=P(batch, None, heads, None), check_vma=False
                             )(q_btnh, k_bksh, v_bksh, valid_bt)
    return run


FUSED = {"cudnn": cudnn_attention,
         "splash": lambda q, k, v, valid, **opts: per_shard(
             functools.partial(splash_attention, **opts))(q, k, v, valid)}


def attend(q_btnh, k_bksh, v_bksh, mask: SlotMask, cfg: ModelConfig, window=None):
    """The attention core `cfg.attention_impl` names, for one layer: [b, t, n, h] -> [b, t, n, h].
    window: this layer's sliding window, a traced int32 (NO_WINDOW: global), or None when
    the config has no sliding layers."""
    scale, softcap = cfg.attention_scale, cfg.attn_logit_softcap
    if mask.dense_bts is not None:
        if window is not None:
            mask = mask.within(window)
        return gqa_attention(q_btnh, k_bksh, v_bksh, mask.dense_bts, block=cfg.attention_block,
                             scale=scale, softcap=softcap)
    fused = functools.partial(FUSED[resolve_impl(cfg.attention_impl, softcap=softcap)],
                              scale=scale, softcap=softcap)
    if window is None:
        return fused(q_btnh, k_bksh, v_bksh, mask.valid_bs)
    kinds = sorted({NO_WINDOW if w == GLOBAL else w for w in cfg.attention_windows})
    branches = [functools.partial(fused, window=GLOBAL if w == NO_WINDOW else w) for w in kinds]
    kind = jnp.sum(window > jnp.asarray(kinds, jnp.int32))  # window's index in kinds
    return jax.lax.switch(kind, branches, q_btnh, k_bksh, v_bksh, mask.valid_bs)
