"""The jitted sampler: one prefill over left-padded prompts, then a decode loop on device.

Everything from the prefill to the last token runs in one compiled call (a `lax.while_loop`
that exits early once every row has stopped), over a preallocated KV cache with fixed shapes:
no host sync per token. Shapes are bucketed (prompt length by `SamplingConfig.prompt_bucket`,
batch to a power of two), so repeated calls reuse a handful of compiled programs.

Returned log-probs are log softmax of the model's raw logits (temperature 1, no top-k/top-p)
at each sampled token: the log-probability of the sample under the policy itself, which is
what policy-gradient losses need. They equal the sampling distribution only at
temperature 1 with no filters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.errors import UserError
from azr_jax.models import ModelConfig, init_cache, prefill
from azr_jax.sampling.decode import decode_step, logits_from_hidden
from azr_jax.sampling.config import SamplingConfig, padded_batch_size
from azr_jax.sampling.processors import choose_tokens, policy_logprob
from azr_jax.sampling.weight_layout import cpu_layout
from azr_jax.sharding import mesh as mesh_lib


@dataclasses.dataclass
class SampleOutput:
    """Host (numpy) results; R = len(prompts) * num_samples rows, prompt-major."""

    tokens: np.ndarray  # [R, max_new] int32, pad_token_id after a row's stop token
    logprobs: np.ndarray  # [R, max_new] f32 policy log-probs (0 after the stop token)
    lengths: np.ndarray  # [R] int32 generated tokens per row, including the stop token
    prompt_index: np.ndarray  # [R] int32 which prompt each row continues

    def row_tokens(self, r: int) -> list[int]:
        return self.tokens[r, : self.lengths[r]].tolist()


def _per_layer_decode() -> bool:
    """Decode from per-layer weight and cache buffers (`weight_layout.cpu_layout`) on XLA:CPU, where
    slicing stacked ones copies them on every token; GPU/TPU keep the stacked layout (no
    second copy of the weights in device memory)."""
    return jax.default_backend() == "cpu"


@functools.partial(jax.jit, static_argnames=(
    "cfg", "max_new", "greedy", "top_k", "use_top_p", "stop_ids", "pad_id", "rules"))
def _generate(params, decode_overrides, prompt_bt, valid_bt, active_b, key, temperature, top_p, *,
              cfg, max_new, greedy, top_k, use_top_p, stop_ids, pad_id, rules):
    with nn.logical_axis_rules(rules):
        return _generate_body(params, decode_overrides, prompt_bt, valid_bt, active_b, key,
                              temperature, top_p, cfg, max_new, greedy, top_k, use_top_p,
                              stop_ids, pad_id)


def _generate_body(params, decode_overrides, prompt_bt, valid_bt, active_b, key, temperature,
                   top_p, cfg, max_new, greedy, top_k, use_top_p, stop_ids, pad_id):
    b, p = prompt_bt.shape
    decode_params = dict(params, **(decode_overrides or {}))
    choose = functools.partial(choose_tokens, temperature=temperature, top_p=top_p,
                               greedy=greedy, top_k=top_k, use_top_p=use_top_p)
    row_keys_b = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(b))
    step_keys = lambda i: jax.vmap(jax.random.fold_in, (0, None))(row_keys_b, i)
    stop_t = jnp.asarray(stop_ids or (-1,), jnp.int32)
    is_stop = lambda tok_b: jnp.any(tok_b[:, None] == stop_t[None, :], axis=-1)

    cache = init_cache(cfg, b, p + max_new, per_layer=decode_overrides is not None)
    h_btd, cache = prefill(params, cfg, prompt_bt, valid_bt, cache)
    logits_bv = logits_from_hidden(params, cfg, h_btd[:, -1])
    tok_b = choose(logits_bv, step_keys(0))
    lp_b = policy_logprob(logits_bv, tok_b)
    tokens_bn = jnp.full((b, max_new), pad_id, jnp.int32).at[:, 0].set(jnp.where(active_b, tok_b, pad_id))
    logprobs_bn = jnp.zeros((b, max_new), jnp.float32).at[:, 0].set(jnp.where(active_b, lp_b, 0.0))
    lengths_b = active_b.astype(jnp.int32)
    done_b = ~active_b | is_stop(tok_b)
    prompt_len_b = jnp.sum(valid_bt, axis=-1, dtype=jnp.int32)

    def cond(carry):
        i, _, _, done_b, *_ = carry
        return (i < max_new) & ~jnp.all(done_b)

    def body(carry):
        i, tok_b, cache, done_b, tokens_bn, logprobs_bn, lengths_b = carry
        pos_b = prompt_len_b + i - 1  # position of tok_b, sampled at step i - 1
        h_bd, cache = decode_step(decode_params, cfg, tok_b, pos_b, cache)
        logits_bv = logits_from_hidden(decode_params, cfg, h_bd)
        new_b = choose(logits_bv, step_keys(i))
        lp_b = jnp.where(done_b, 0.0, policy_logprob(logits_bv, new_b))
        new_b = jnp.where(done_b, pad_id, new_b)
        tokens_bn = jax.lax.dynamic_update_slice_in_dim(tokens_bn, new_b[:, None], i, 1)
        logprobs_bn = jax.lax.dynamic_update_slice_in_dim(logprobs_bn, lp_b[:, None], i, 1)
        lengths_b = lengths_b + (~done_b).astype(jnp.int32)
        done_b = done_b | is_stop(new_b)
        return i + 1, new_b, cache, done_b, tokens_bn, logprobs_bn, lengths_b

    carry = (jnp.ones((), jnp.int32), tok_b, cache, done_b, tokens_bn, logprobs_bn, lengths_b)
    _, _, _, _, tokens_bn, logprobs_bn, lengths_b = jax.lax.while_loop(cond, body, carry)
    return tokens_bn, logprobs_bn, lengths_b


def _check_prompts(prompts: Sequence[Sequence[int]], cfg: ModelConfig, max_new: int) -> int:
    if not prompts:
        raise UserError("no prompts given")
    longest = 0
    for i, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise UserError(f"prompt {i} is empty; give at least one token")
        longest = max(longest, len(prompt))
    if longest > cfg.max_seq_len:
        raise UserError(f"prompt of {longest} tokens is longer than the model's context "
                        f"({cfg.max_seq_len} tokens)")
    if longest + max_new > cfg.max_seq_len:
        raise UserError(f"prompt of {longest} tokens plus max_new_tokens={max_new} exceeds the "
                        f"model's context ({cfg.max_seq_len} tokens); lower max_new_tokens")
    return longest


def pack_prompts(prompts, sampling: SamplingConfig, batch_multiple: int = 1, pad_id: int = 0):
    """Left-pad the prompts (each repeated num_samples times) into a bucketed [B, P] batch.

    Returns (tokens_bt int32, valid_bt bool, active_b bool, prompt_index_r int32). Padding
    rows copy row 0 (harmless numerics) and are inactive."""
    n = sampling.num_samples
    prompt_index_r = np.repeat(np.arange(len(prompts), dtype=np.int32), n)
    rows = len(prompt_index_r)
    b = padded_batch_size(rows, batch_multiple)
    p = sampling.padded_prompt_length(max(len(q) for q in prompts))
    tokens_bt = np.full((b, p), pad_id, np.int32)
    valid_bt = np.zeros((b, p), bool)
    for r in range(b):
        prompt = prompts[prompt_index_r[r] if r < rows else 0]
        tokens_bt[r, p - len(prompt):] = prompt
        valid_bt[r, p - len(prompt):] = True
    active_b = np.arange(b) < rows
    return tokens_bt, valid_bt, active_b, prompt_index_r


def _fetch(arrays: tuple) -> tuple:
    """Host copies of the sampler's outputs. Rows are sharded over the data axis; on a
    multi-host mesh some shards live on other processes' devices, so all are gathered in one
    call (every process gets every row); otherwise a plain fetch."""
    if all(x.is_fully_addressable or x.is_fully_replicated for x in arrays):
        return jax.device_get(arrays)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(arrays, tiled=True)


def as_key(seed_or_key):
    if isinstance(seed_or_key, (int, np.integer)):
        return jax.random.PRNGKey(int(seed_or_key))
    return seed_or_key


@dataclasses.dataclass(frozen=True)
class PreparedParams:
    """Model parameters with their decode layout, made once for many `sample` calls: on CPU
    the per-layer copy of the weights (`weight_layout.cpu_layout`), elsewhere nothing extra. The
    copy lives as long as this object: prepare per rollout phase or eval, not per run."""

    params: Any
    decode_overrides: Optional[dict]


def prepare_params(params, cfg: ModelConfig, mesh: Optional[jax.sharding.Mesh] = None
                   ) -> PreparedParams:
    if isinstance(params, PreparedParams):
        return params
    if not _per_layer_decode():
        return PreparedParams(params, None)
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        return PreparedParams(params, cpu_layout(params, cfg))


def sample(params, cfg: ModelConfig, prompts: Sequence[Sequence[int]], key,
           sampling: SamplingConfig = SamplingConfig(), mesh: Optional[jax.sharding.Mesh] = None
           ) -> SampleOutput:
    """Sample continuations of token-id prompts (of any lengths) in one compiled call.

    params: the model parameters (already placed on `mesh` when one is given, e.g. with
    `azr_jax.sharding.shard_params`; unsharded parameters are fine too), or
    `prepare_params(...)` of them to reuse their decode layout across calls. key: a PRNG key
    or an int seed; row r's draws depend only on (key, r, step), so a seed reproduces. With
    `mesh`, rows are split over the mesh's data axes (the batch is padded to a multiple of
    them) and the model's logical axis rules apply, with replication wherever a dimension
    does not divide.
    """
    _check_prompts(prompts, cfg, sampling.max_new_tokens)
    multiple = mesh_lib.data_parallel_size(mesh) if mesh is not None else 1
    tokens_bt, valid_bt, active_b, prompt_index_r = pack_prompts(
        prompts, sampling, multiple, sampling.pad_token_id)
    inputs = (tokens_bt, valid_bt, active_b)
    rules, ctx = (), contextlib.nullcontext()
    if mesh is not None:
        inputs = tuple(jax.device_put(x, mesh_lib.batch_sharding(mesh)) for x in inputs)
        rules, ctx = mesh_lib.model_rules(cfg, mesh), jax.set_mesh(mesh)
    prepared = prepare_params(params, cfg, mesh)
    with ctx:
        out = _generate(prepared.params, prepared.decode_overrides, *inputs, as_key(key),
                        jnp.float32(sampling.temperature or 1.0), jnp.float32(sampling.top_p),
                        cfg=cfg, max_new=sampling.max_new_tokens,
                        greedy=sampling.greedy, top_k=sampling.top_k,
                        use_top_p=sampling.top_p < 1.0, stop_ids=sampling.stop_token_ids,
                        pad_id=sampling.pad_token_id, rules=rules)
    tokens_bn, logprobs_bn, lengths_b = _fetch(tuple(out))
    rows = len(prompt_index_r)
    return SampleOutput(tokens=tokens_bn[:rows], logprobs=logprobs_bn[:rows],
                        lengths=lengths_b[:rows], prompt_index=prompt_index_r)
