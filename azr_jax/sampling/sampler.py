"""The sampler: `sample` runs token-id prompts as one static batch, or, with more rows than
`SamplingConfig.max_rows_per_call`, through that many decode slots with refill
(`sampling.continuous`). Both run the same prefill and decode step (`sampling.rows`), and
with `SamplingConfig.share_prefixes` prefill each distinct prompt once for all the rows that
continue it (`sampling.prefix`).

A static batch runs from the prefill to the last token in one compiled call (a
`lax.while_loop` that exits early once every row has stopped), over a preallocated KV cache
with fixed shapes: no host sync per token. Shapes are bucketed (prompt length by
`SamplingConfig.prompt_bucket`, batch to a power of two), so repeated calls reuse a handful
of compiled programs.

Returned log-probs are log softmax of the model's raw logits (temperature 1, no top-k/top-p)
at each sampled token: the log-probability of the sample under the policy itself, which is
what policy-gradient losses need. They equal the sampling distribution only at
temperature 1 with no filters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.errors import UserError
from azr_jax.models import ModelConfig
from azr_jax.sampling import continuous, paged, prefix
from azr_jax.sampling.config import SamplingConfig, padded_batch_size
from azr_jax.sampling.rows import decode_loop, first_tokens, picker, prefill
from azr_jax.sampling.weight_layout import cpu_layout
from azr_jax.sharding import mesh as mesh_lib


@dataclasses.dataclass
class SampleOutput:
    """Host (numpy) results; R = len(prompts) * num_samples rows, prompt-major."""

    tokens: np.ndarray  # [R, max_new] int32, pad_token_id after a row's stop token
    logprobs: np.ndarray  # [R, max_new] f32 policy log-probs (0 after the stop token)
    lengths: np.ndarray  # [R] int32 generated tokens per row, including the stop token
    prompt_index: np.ndarray  # [R] int32 which prompt each row continues
    stats: Optional[dict] = None  # the paged engine's pool figures (`sampling.paged`)

    def row_tokens(self, r: int) -> list[int]:
        return self.tokens[r, : self.lengths[r]].tolist()


def _per_layer_decode() -> bool:
    """Decode from per-layer weight and cache buffers (`weight_layout.cpu_layout`) on XLA:CPU, where
    slicing stacked ones copies them on every token; GPU/TPU keep the stacked layout (no
    second copy of the weights in device memory)."""
    return jax.default_backend() == "cpu"


@functools.partial(jax.jit, static_argnames=("cfg", "max_new", "rules"))
def _generate(params, decode_overrides, pick, prompt_pt, valid_pt, source_b, active_b, budget_b,
              *, cfg, max_new, rules):
    with nn.logical_axis_rules(rules):
        return _generate_body(params, decode_overrides, pick, prompt_pt, valid_pt, source_b,
                              active_b, budget_b, cfg, max_new)


def _generate_body(params, decode_overrides, pick, prompt_pt, valid_pt, source_b, active_b,
                   budget_b, cfg, max_new):
    """Rows b continue prompts p: row i the prompt source_b[i] (shared prefixes,
    `sampling.prefix`), or row i the prompt i when source_b is None."""
    b, p = active_b.shape[0], prompt_pt.shape[1]
    decode_params = dict(params, **(decode_overrides or {}))
    per_layer = decode_overrides is not None
    if source_b is None:  # prefill needs the prompt's slots only
        h_bd, cache = prefill(params, cfg, prompt_pt, valid_pt, per_layer=per_layer,
                              num_slots=p, extra_slots=max_new)
        valid_bt = valid_pt
    else:
        h_bd, cache, valid_bt = prefix.prefill_rows(params, cfg, prompt_pt, valid_pt, source_b,
                                                    per_layer=per_layer, num_slots=p + max_new)
    rows, tok_b, lp_b = first_tokens(params, cfg, pick, h_bd, valid_bt, jnp.arange(b, dtype=jnp.int32),
                                     budget_b, active_b)
    tokens_bn = jnp.full((b, max_new), pick.pad_id, jnp.int32).at[:, 0].set(tok_b)
    logprobs_bn = jnp.zeros((b, max_new), jnp.float32).at[:, 0].set(lp_b)
    _, rows, _, tokens_bn, logprobs_bn = decode_loop(decode_params, cfg, pick, rows, cache,
                                                     tokens_bn, logprobs_bn, first=1)
    return tokens_bn, logprobs_bn, rows.count_b


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
    prompt_index_r = np.repeat(np.arange(len(prompts), dtype=np.int32), sampling.num_samples)
    rows = len(prompt_index_r)
    b = padded_batch_size(rows, batch_multiple)
    p = sampling.padded_prompt_length(max(len(q) for q in prompts))
    tokens_bt, valid_bt = prefix.pack([prompts[i] for i in prompt_index_r], b, p, pad_id)
    return tokens_bt, valid_bt, np.arange(b) < rows, prompt_index_r


def _static_batch(prompts, sampling: SamplingConfig, batch_multiple: int):
    """The static batch's prompt arrays: (tokens_pt, valid_pt, source_b, active_b). With
    `share_prefixes` and repeated prompts, the p rows are the distinct prompts and row i
    continues prompt source_b[i]; otherwise one prompt per row and source_b is None."""
    pad = sampling.pad_token_id
    if sampling.share_prefixes:
        rows = len(prompts) * sampling.num_samples
        b = padded_batch_size(rows, batch_multiple)
        unique, source_p = prefix.distinct_prompts(prompts)
        d = prefix.shared_batch(len(unique), b, batch_multiple)
        if d is not None:
            source_b = np.zeros(b, np.int32)  # padding rows: prompt 0, inactive
            source_b[:rows] = np.repeat(source_p, sampling.num_samples)
            p = sampling.padded_prompt_length(max(len(q) for q in unique))
            return (*prefix.pack(unique, d, p, pad), source_b, np.arange(b) < rows)
    tokens_bt, valid_bt, active_b, _ = pack_prompts(prompts, sampling, batch_multiple, pad)
    return tokens_bt, valid_bt, None, active_b


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


def _row_budgets(budgets, rows: int, max_new: int) -> np.ndarray:
    if budgets is None:
        return np.full(rows, max_new, np.int32)
    budget_r = np.asarray(budgets, np.int64)
    if budget_r.shape != (rows,):
        raise UserError(f"budgets: one per row ({rows} = prompts x num_samples), "
                        f"got shape {budget_r.shape}")
    if budget_r.size and (budget_r.min() < 1 or budget_r.max() > max_new):
        raise UserError(f"budgets must lie in [1, max_new_tokens={max_new}], got "
                        f"{budget_r.min()}..{budget_r.max()}")
    return budget_r.astype(np.int32)


def sample(params, cfg: ModelConfig, prompts: Sequence[Sequence[int]], key,
           sampling: SamplingConfig = SamplingConfig(), mesh: Optional[jax.sharding.Mesh] = None,
           budgets: Optional[Sequence[int]] = None,
           progress: Optional[Callable[[int], None]] = None) -> SampleOutput:
    """Sample continuations of token-id prompts (of any lengths).

    params: the model parameters (already placed on `mesh` when one is given, e.g. with
    `azr_jax.sharding.shard_params`; unsharded parameters are fine too), or
    `prepare_params(...)` of them to reuse their decode layout across calls. key: a PRNG key
    or an int seed; row r's draws depend only on (key, r, token index), so a seed reproduces,
    whatever the batching. budgets: optional most new tokens per row (R = prompts x
    num_samples, prompt-major; each <= max_new_tokens). Up to `sampling.max_rows_per_call`
    rows (or all, when it is 0) run as one static batch in one compiled call; more rows run
    through that many decode slots with refill (`sampling.continuous`). With `mesh`, rows
    (slots) are split over the mesh's data axes (padded to a multiple of them) and the
    model's logical axis rules apply, with replication wherever a dimension does not divide.
    progress: called with the number of rows newly finished (per decode chunk; once for a
    static batch).
    """
    _check_prompts(prompts, cfg, sampling.max_new_tokens)
    multiple = mesh_lib.data_parallel_size(mesh) if mesh is not None else 1
    prompt_index_r = np.repeat(np.arange(len(prompts), dtype=np.int32), sampling.num_samples)
    rows = len(prompt_index_r)
    budget_r = _row_budgets(budgets, rows, sampling.max_new_tokens)
    rules, ctx, place = (), contextlib.nullcontext(), jnp.asarray
    if mesh is not None:
        rules, ctx = mesh_lib.model_rules(cfg, mesh), jax.set_mesh(mesh)
        place = functools.partial(jax.device_put, device=mesh_lib.batch_sharding(mesh))
    prepared = prepare_params(params, cfg, mesh)
    pick = picker(as_key(key), sampling)
    slots = -(-sampling.max_rows_per_call // multiple) * multiple
    with ctx:
        if sampling.kv_layout == "paged":
            out = paged.generate(
                prepared.params, dict(prepared.params, **(prepared.decode_overrides or {})), cfg,
                prompts, prompt_index_r, budget_r, sampling, pick=pick, place=place, fetch=_fetch,
                num_slots=slots if 0 < slots < rows else padded_batch_size(rows, multiple),
                batch_multiple=multiple, per_layer=prepared.decode_overrides is not None,
                rules=rules, progress=progress)
            return SampleOutput(*out[:3], prompt_index=prompt_index_r, stats=out[3])
        if 0 < slots < rows:
            unique, source_p = (prefix.distinct_prompts(prompts) if sampling.share_prefixes
                                else (prompts, np.arange(len(prompts))))
            tokens_rn, logprobs_rn, lengths_r = continuous.generate(
                prepared.params, dict(prepared.params, **(prepared.decode_overrides or {})), cfg,
                unique, source_p[prompt_index_r], budget_r, sampling, pick=pick, place=place,
                fetch=_fetch, num_slots=slots, batch_multiple=multiple,
                per_layer=prepared.decode_overrides is not None, rules=rules, progress=progress)
            return SampleOutput(tokens=tokens_rn, logprobs=logprobs_rn, lengths=lengths_r,
                                prompt_index=prompt_index_r)
        prompt_pt, valid_pt, source_b, active_b = _static_batch(prompts, sampling, multiple)
        budget_b = np.ones(len(active_b), np.int32)
        budget_b[:rows] = budget_r
        inputs = tuple(None if x is None else place(x)
                       for x in (prompt_pt, valid_pt, source_b, active_b, budget_b))
        out = _generate(prepared.params, prepared.decode_overrides, pick, *inputs, cfg=cfg,
                        max_new=sampling.max_new_tokens, rules=rules)
    tokens_bn, logprobs_bn, lengths_b = _fetch(tuple(out))
    if progress is not None:
        progress(rows)
    return SampleOutput(tokens=tokens_bn[:rows], logprobs=logprobs_bn[:rows],
                        lengths=lengths_b[:rows], prompt_index=prompt_index_r)
