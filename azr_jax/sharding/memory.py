"""Parameter count and per-device HBM estimate of a model on a mesh (a training recipe's
sizes come from `azr_jax.pipeline.recipe_memory`).

Shapes come from `jax.eval_shape` of the real model (no memory is allocated); each parameter
is divided by the mesh axes its logical axes map to (the same rules table and divisibility
fallback as `spec_for`). Activations follow what the code actually materialises:

- training (per micro-batch of `rows` sequences of length `t` on one device): with remat
  "full" every decoder layer keeps only its input x_btd; the backward pass of one layer then
  recomputes that layer (its weights all-gathered over fsdp), whose largest tensors are the attention scores (f32), the softmax
  probabilities (compute dtype) and the score gradients (f32): rows*heads*q*t*(4+a+4) bytes,
  q = t, or `attention_block` query tokens when the model computes attention in blocks (then
  this stops being the term that limits the sequence length); a logit soft-cap adds the
  f32 derivative of its tanh (+4). Sliding-window layers mask the same [q, t] scores. A fused
  kernel (`model.attention_impl` cudnn or splash, or auto on GPU/TPU, where a soft-capped model
  gets splash or XLA: cuDNN has no soft-cap) keeps no scores: only per-query softmax
  statistics, rows*heads*t*8 bytes. The gated MLP (SwiGLU or GeGLU alike) keeps its gate and
  up projections; `post_norms` adds two normalised [rows, t, d] outputs per layer.
  remat "none" keeps every layer's intermediates; "dots*" keeps the matmul outputs (the
  scores included). The vocabulary projection runs in chunks of 256 positions
  (azr_jax.rl.logprobs), so logits cost rows*256*vocab*4 bytes a few times over (once more
  with a final-logit soft-cap: its tanh).
- rollouts (one sampler call of `rows` sequences): the KV cache
  layers*rows*slots*kv_heads*head_dim*2 (k and v) in the compute dtype (sliding-window
  layers too: the cache keeps every slot for every layer), plus the prefill
  of the padded prompt (scores and probabilities of one layer or block), plus a compute-dtype copy of
  the weights when they are stored in another dtype. With a paged KV cache
  (`kv_pool_tokens` > 0, `sampling.kv_layout="paged"`) the cache is the page pool instead:
  layers*pool_tokens*kv_heads*head_dim*2, where pool_tokens is one data shard's pages x page
  size (the engine splits the pages over the data axes, not the KV heads over tensor), and
  the prefill also holds its prompts' dense cache before writing it into pages.
- parameters, gradients (parameter dtype) and AdamW's two moments (parameter dtype; optax's
  default) are sharded like the parameters. Gradients only exist during the update.

Peak = static + max(training phase, rollout phase). It is an estimate of live buffers, not
of XLA's allocator: keep ~15% headroom for fusion temporaries and fragmentation.
"""

from __future__ import annotations

import dataclasses
import math
import types
from typing import Optional

import jax
import numpy as np
from flax import linen as nn

from azr_jax.models import abstract_params
from azr_jax.models.attention_kernels import resolve_impl
from azr_jax.sharding.mesh import spec_for
from azr_jax.sharding.rules import LOGICAL_RULES, MESH_AXES

GIB = 1024 ** 3
LOGIT_CHUNK = 256  # positions per vocabulary chunk in azr_jax.rl.logprobs

# HBM per chip (GiB) and the chips in a slice named "<gen>-<n>", where n counts TensorCores
# for v4/v5p (2 per chip) and chips for v5e/v6e. Used to print "fits in HBM" verdicts.
TPU_GENERATIONS = {"v4": (32, 2), "v5p": (95, 2), "v5litepod": (16, 1), "v5e": (16, 1),
                   "v6e": (32, 1)}


def slice_chips(accelerator_type: str) -> tuple[int, float]:
    """(chips, HBM GiB per chip) of an accelerator type such as "v5p-64"."""
    gen, _, count = accelerator_type.rpartition("-")
    if gen not in TPU_GENERATIONS or not count.isdigit():
        raise ValueError(f"unknown TPU slice {accelerator_type!r}; known generations: "
                         f"{', '.join(TPU_GENERATIONS)}")
    hbm, cores_per_chip = TPU_GENERATIONS[gen]
    return int(count) // cores_per_chip, float(hbm)


def _bytes(dtype_name: str) -> int:
    return np.dtype(jax.numpy.dtype(dtype_name)).itemsize


def _leaves(model_cfg):
    boxed = abstract_params(model_cfg)
    is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)  # noqa: E731
    return [(leaf.names, leaf.unbox()) for leaf in jax.tree.leaves(boxed, is_leaf=is_box)]


def param_count(model_cfg) -> int:
    """Number of parameters, from the abstract (eval_shape) parameter tree."""
    return sum(int(math.prod(value.shape)) for _, value in _leaves(model_cfg))


def _fake_mesh(sizes: tuple[int, int, int]):
    return types.SimpleNamespace(shape=dict(zip(MESH_AXES, sizes)))


def param_shard_elements(model_cfg, mesh_sizes: tuple[int, int, int], rules=LOGICAL_RULES) -> int:
    """Parameter elements held by one device (the largest shard of each parameter)."""
    mesh = _fake_mesh(mesh_sizes)
    total = 0
    for names, value in _leaves(model_cfg):
        spec = spec_for(names, value.shape, mesh, rules)
        split = 1
        for entry in spec:
            for ax in ((entry,) if isinstance(entry, str) else tuple(entry or ())):
                split *= mesh.shape[ax]
        total += -(-int(math.prod(value.shape)) // split)
    return total


def _split(n: int, tensor: int) -> int:
    """Size of a dimension on one device when it is sharded over `tensor` (if it divides)."""
    return n // tensor if n % tensor == 0 else n


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device. See the module docstring for what each term counts."""

    num_params: int
    mesh: tuple[int, int, int]
    params: int
    grads: int
    opt_state: int
    train_saved: int  # activations kept across layers for the backward pass
    train_layer: int  # one layer's working set while recomputing / differentiating it
    train_logits: int
    rollout_kv: int
    rollout_prefill: int
    rollout_weights_copy: int
    notes: tuple[str, ...] = ()

    @property
    def static(self) -> int:
        return self.params + self.opt_state

    @property
    def train_peak(self) -> int:
        return self.static + self.grads + self.train_saved + self.train_layer + self.train_logits

    @property
    def rollout_peak(self) -> int:
        return self.static + self.rollout_kv + self.rollout_prefill + self.rollout_weights_copy

    @property
    def peak(self) -> int:
        return max(self.train_peak, self.rollout_peak)

    def table(self, hbm_gib: Optional[float] = None) -> str:
        rows = [("parameters", self.params), ("AdamW moments", self.opt_state),
                ("gradients (update)", self.grads), ("saved activations", self.train_saved),
                ("one layer's backward", self.train_layer), ("logit chunks", self.train_logits),
                ("= training peak", self.train_peak), ("KV cache (rollout)", self.rollout_kv),
                ("prefill attention", self.rollout_prefill),
                ("compute-dtype weights", self.rollout_weights_copy),
                ("= rollout peak", self.rollout_peak), ("PEAK per device", self.peak)]
        d, f, t = self.mesh
        lines = [f"{self.num_params / 1e9:.2f}B parameters on mesh data={d} fsdp={f} tensor={t}"]
        lines += [f"  {name:<24}{value / GIB:9.2f} GiB" for name, value in rows]
        if hbm_gib is not None:
            verdict = "fits" if self.peak <= 0.85 * hbm_gib * GIB else "DOES NOT FIT"
            lines.append(f"  HBM {hbm_gib:g} GiB per chip: {verdict} "
                         f"({100 * self.peak / (hbm_gib * GIB):.0f}% used, 85% allowed)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def estimate_memory(model_cfg, mesh_sizes: tuple[int, int, int], *, train_rows: int,
                    train_len: int, rollout_rows: int, prompt_len: int, cache_len: int,
                    kv_pool_tokens: int = 0, rules=LOGICAL_RULES,
                    backend: str = "tpu") -> MemoryEstimate:
    """Per-device bytes. `train_rows` / `rollout_rows` are rows on ONE device (a micro-batch
    of the update; one sampler call), lengths are padded lengths. `kv_pool_tokens` > 0: a
    paged KV cache of that many token slots per device (one data shard's pages x page size)
    replaces the dense one.
    `backend` is the one `attention_impl="auto"` resolves for (recipes plan TPU slices)."""
    data, fsdp, tensor = mesh_sizes
    c = model_cfg
    p_bytes, a = _bytes(c.param_dtype), _bytes(c.dtype)
    n_params = param_count(c)
    shard = param_shard_elements(c, mesh_sizes, rules)
    params = shard * p_bytes
    heads, kv, mlp, vocab = (_split(c.num_heads, tensor), _split(c.num_kv_heads, tensor),
                             _split(c.intermediate_size, tensor), _split(c.vocab_size, tensor))
    h, d, L = c.head_dim, c.hidden_size, c.num_layers

    b, t = train_rows, train_len
    block = c.attention_block or t  # query tokens whose scores exist at once
    fused = resolve_impl(c.attention_impl, backend, c.attn_logit_softcap) != "xla"
    capped = 4 if c.attn_logit_softcap else 0  # the soft-cap's tanh derivative, f32
    attn_sq = b * heads * min(block, t) * t * (4 + a + 4 + capped)  # scores, probs, gradient
    if fused:  # flash-style kernels: softmax statistics per query, no [t, s] scores
        attn_sq = b * heads * t * 8
    qkvo = b * t * (2 * heads + 2 * kv) * h * a * 2  # q, k, v, attention output + grads
    mlp_act = b * t * mlp * a * 3 * 2  # gate, up, act(gate)*up + grads (SwiGLU, GeGLU)
    residual = b * t * d * a
    norms_out = (4 if c.post_norms else 2) * residual  # each norm's output (and its input kept)
    # FSDP all-gathers one layer's weights (stored and compute dtype) and holds its gradient.
    layer_weights = -(-(n_params - c.vocab_size * d * (1 if c.tie_embeddings else 2)) // L // tensor)
    gathered = layer_weights * (2 * p_bytes + a)
    layer = attn_sq + qkvo + mlp_act + 2 * residual + norms_out + gathered
    notes = []
    if c.remat == "none":
        saved = L * (layer - gathered)
    elif c.remat == "full":
        saved = L * residual
    else:  # dots policies keep matmul outputs, the attention scores among them (XLA path)
        scores = b * heads * t * 8 if fused else b * heads * t * t * 4
        saved = L * (scores + qkvo // 2 + b * t * mlp * a * 2 + residual)
        if not fused:
            notes.append(f"remat={c.remat!r} keeps the attention scores of every layer")
    logits = b * min(LOGIT_CHUNK, t) * vocab * 4 * (5 if c.final_logit_softcap else 4)

    r = rollout_rows
    kv_cache = L * r * cache_len * kv * h * a * 2 + r * cache_len
    prefill_scores = (r * heads * prompt_len * 4 if fused
                      else r * heads * min(block, prompt_len) * prompt_len * (4 + a))
    prefill = prefill_scores + r * prompt_len * (heads + 2 * kv) * h * a
    if kv_pool_tokens:  # KV heads unsplit; the prompts' dense cache until written into pages
        kv_cache = L * kv_pool_tokens * c.num_kv_heads * h * a * 2
        prefill += L * r * prompt_len * kv * h * a * 2
    weights_copy = shard * a if c.param_dtype != c.dtype else 0
    return MemoryEstimate(num_params=n_params, mesh=(data, fsdp, tensor), params=params,
                          grads=params, opt_state=2 * params, train_saved=saved,
                          train_layer=layer, train_logits=logits, rollout_kv=kv_cache,
                          rollout_prefill=prefill, rollout_weights_copy=weights_copy,
                          notes=tuple(notes))
