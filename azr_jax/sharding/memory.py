"""Parameter count and per-device HBM estimate of a training recipe on a mesh.

Shapes come from `jax.eval_shape` of the real model (no memory is allocated); each parameter
is divided by the mesh axes its logical axes map to (the same rules table and divisibility
fallback as `spec_for`). Activations follow what the code actually materialises:

- training (per micro-batch of `rows` sequences of length `t` on one device): with remat
  "full" every decoder layer keeps only its input x_btd; the backward pass of one layer then
  recomputes that layer (its weights all-gathered over fsdp), whose largest tensors are the attention scores (f32), the softmax
  probabilities (compute dtype) and the score gradients (f32): rows*heads*q*t*(4+a+4) bytes,
  q = t, or `attention_block` query tokens when the model computes attention in blocks (then
  this stops being the term that limits the sequence length).
  remat "none" keeps every layer's intermediates; "dots*" keeps the matmul outputs (the
  scores included). The vocabulary projection runs in chunks of 256 positions
  (azr_jax.rl.logprobs), so logits cost rows*256*vocab*4 bytes a few times over.
- rollouts (one sampler call of `rows` sequences): the KV cache
  layers*rows*slots*kv_heads*head_dim*2 (k and v) in the compute dtype, plus the prefill
  of the padded prompt (scores and probabilities of one layer or block), plus a compute-dtype copy of
  the weights when they are stored in another dtype.
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
    from flax import linen as nn

    from azr_jax.models import abstract_params

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
    from azr_jax.sharding.mesh import spec_for

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
                    rules=LOGICAL_RULES) -> MemoryEstimate:
    """Per-device bytes. `train_rows` / `rollout_rows` are rows on ONE device (a micro-batch
    of the update; one sampler call), lengths are padded lengths."""
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
    attn_sq = b * heads * min(block, t) * t * (4 + a + 4)  # scores f32, probs, their gradient f32
    qkvo = b * t * (2 * heads + 2 * kv) * h * a * 2  # q, k, v, attention output + grads
    mlp_act = b * t * mlp * a * 3 * 2  # gate, up, silu*up + grads
    residual = b * t * d * a
    # FSDP all-gathers one layer's weights (stored and compute dtype) and holds its gradient.
    layer_weights = -(-(n_params - c.vocab_size * d * (1 if c.tie_embeddings else 2)) // L // tensor)
    gathered = layer_weights * (2 * p_bytes + a)
    layer = attn_sq + qkvo + mlp_act + 4 * residual + gathered
    notes = []
    if c.remat == "none":
        saved = L * (layer - gathered)
    elif c.remat == "full":
        saved = L * residual
    else:  # dots policies keep matmul outputs, the attention scores among them
        saved = L * (b * heads * t * t * 4 + qkvo // 2 + b * t * mlp * a * 2 + residual)
        notes.append(f"remat={c.remat!r} keeps the attention scores of every layer")
    logits = b * min(LOGIT_CHUNK, t) * vocab * 4 * 4

    r = rollout_rows
    kv_cache = L * r * cache_len * kv * h * a * 2 + r * cache_len
    prefill = (r * heads * min(block, prompt_len) * prompt_len * (4 + a)
               + r * prompt_len * (heads + 2 * kv) * h * a)
    weights_copy = shard * a if c.param_dtype != c.dtype else 0
    return MemoryEstimate(num_params=n_params, mesh=(data, fsdp, tensor), params=params,
                          grads=params, opt_state=2 * params, train_saved=saved,
                          train_layer=layer, train_logits=logits, rollout_kv=kv_cache,
                          rollout_prefill=prefill, rollout_weights_copy=weights_copy,
                          notes=tuple(notes))


# Rows per sampler call the paper recipes are sized for: one task type's learnability
# rollouts (64 tasks x n=8). See `recipe_shapes`.
CHUNKED_ROLLOUT_ROWS = 512


def recipe_shapes(cfg, num_devices: int, rollout_rows: Optional[int] = None) -> dict:
    """The sizes a training config implies on `num_devices` devices.

    Update batch: 2 roles x task types x `batch_per_group` sequences, or one mini-batch of
    `optim.mini_batch_size` of them when smaller (one AdamW step's rows), split over the
    data-parallel devices and `optim.micro_batches`. Rollouts: the largest sampler call. The
    trainer (azr_jax.pipeline.rollout) samples every learnability rollout of a step in one
    call, task types x batch_per_group x num_rollouts rows padded to a power of two, unless
    the config has `sampling.max_rows_per_call`; `rollout_rows` overrides both.
    """
    from azr_jax.sampling.config import BUCKET_POLICIES, padded_batch_size
    from azr_jax.sharding.mesh import MeshConfig

    mesh = MeshConfig(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor).shape(num_devices)
    dp = mesh[0] * mesh[1]
    groups = 2 * len(cfg.selfplay.task_types)
    update_rows = groups * cfg.selfplay.batch_per_group
    micro = cfg.optim.micro_batches
    mini = cfg.optim.get("mini_batch_size", 0) if hasattr(cfg.optim, "get") else 0
    if 0 < mini < update_rows:  # one optimizer step's rows (azr_jax.rl.minibatch)
        update_rows = mini
    if update_rows % (dp * micro):
        raise ValueError(f"update batch {update_rows} (a mini-batch when optim.mini_batch_size "
                         f"is set) is not a multiple of data-parallel devices ({dp}) x "
                         f"micro_batches ({micro})")
    if rollout_rows is None:
        rollout_rows = padded_batch_size(len(cfg.selfplay.task_types) * cfg.selfplay.batch_per_group
                                         * cfg.selfplay.num_rollouts, dp)
        cap = cfg.sampling.get("max_rows_per_call", 0) if hasattr(cfg.sampling, "get") else 0
        if cap:
            rollout_rows = min(rollout_rows, padded_batch_size(cap, dp))
    prompt = BUCKET_POLICIES[cfg.sampling.prompt_bucket](cfg.sampling.max_prompt_len)
    return dict(mesh=mesh, train_rows=update_rows // (dp * micro),
                train_len=prompt + cfg.sampling.max_new_tokens,
                rollout_rows=-(-rollout_rows // dp), prompt_len=prompt,
                cache_len=prompt + cfg.sampling.max_new_tokens)


def model_config_of(cfg):
    """The ModelConfig of a training config's model section (a preset)."""
    from azr_jax.models import get_preset

    return get_preset(cfg.model.preset).replace(
        dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype, remat=cfg.model.remat,
        attention_block=cfg.model.get("attention_block", 0))


def estimate_for_config(cfg, num_devices: int, rollout_rows: Optional[int] = None) -> MemoryEstimate:
    shapes = recipe_shapes(cfg, num_devices, rollout_rows)
    mesh = shapes.pop("mesh")
    return estimate_memory(model_config_of(cfg), mesh, **shapes)


def recipe_report(path_or_name: str, accelerator_type: Optional[str] = None,
                  overrides=(), rollout_rows: Optional[int] = None) -> tuple[MemoryEstimate, str]:
    """(estimate, printable report) of a recipe file on its TPU_SLICE (or `accelerator_type`),
    after `--config.key=value` overrides."""
    import importlib.util
    import os

    from azr_jax.errors import UserError
    from azr_jax.pipeline.config import _resolve, apply_overrides, load_config_file

    path = _resolve(path_or_name)
    config = apply_overrides(load_config_file(path), overrides)
    if accelerator_type is None:
        spec = importlib.util.spec_from_file_location("_azr_recipe_slice", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        accelerator_type = getattr(module, "TPU_SLICE", None)
        if accelerator_type is None:
            raise UserError(f"{path} names no TPU_SLICE; pass --slice (e.g. v5p-64)")
    try:
        chips, hbm = slice_chips(accelerator_type)
    except ValueError as e:
        raise UserError(str(e)) from None
    estimate = estimate_for_config(config, chips, rollout_rows)
    shapes = recipe_shapes(config, chips, rollout_rows)
    head = (f"{os.path.basename(path)} on {accelerator_type} ({chips} chips): "
            f"{config.model.preset}, remat={config.model.remat}, "
            f"attention_block={config.model.get('attention_block', 0)}, "
            f"micro_batches={config.optim.micro_batches}\n"
            f"  per device: {shapes['train_rows']} row(s) x {shapes['train_len']} tokens per "
            f"micro-batch; rollout call {shapes['rollout_rows']} rows x {shapes['cache_len']} slots")
    return estimate, head + "\n" + estimate.table(hbm)


def main(argv=None) -> int:
    import argparse

    from azr_jax.errors import UserError

    parser = argparse.ArgumentParser(
        description="Parameter count and per-device memory of recipes; extra "
                    "--config.key=value flags override the recipes (e.g. --config.mesh.fsdp=8).")
    parser.add_argument("configs", nargs="+", help="recipe files or names under configs/")
    parser.add_argument("--slice", default=None, help="TPU slice (default: the recipe's TPU_SLICE)")
    parser.add_argument("--rollout-rows", type=int, default=None,
                        help="global rows per sampler call (default: what the trainer does; "
                             f"the recipes are sized for {CHUNKED_ROLLOUT_ROWS})")
    args, overrides = parser.parse_known_args(argv)
    try:
        for name in args.configs:
            print(recipe_report(name, args.slice, overrides, args.rollout_rows)[1])
    except UserError as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
