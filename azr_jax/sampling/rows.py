"""What the static sampler and continuous batching share: the prefill, the first token, and
one decode step of a batch of rows, each row carrying its own PRNG stream, position, token
count and budget (`Rows`).

Row r's token i is drawn with `fold_in(fold_in(key, r), i)`, so a row's tokens depend only on
(key, r) and never on its batch slot, its neighbours or when it started.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp

from azr_jax.models import ModelConfig, init_cache
from azr_jax.models import prefill as model_prefill
from azr_jax.sampling.decode import decode_step, logits_from_hidden
from azr_jax.sampling.processors import choose_tokens, policy_logprob


@flax.struct.dataclass
class Rows:
    """Per-row decode state; every leaf has the batch on axis 0."""

    tok_b: jax.Array  # int32 last sampled token (fed to the next step)
    pos_b: jax.Array  # int32 its position in the row's sequence
    count_b: jax.Array  # int32 tokens produced so far (= index of the next one)
    row_b: jax.Array  # int32 global row id: its PRNG stream
    budget_b: jax.Array  # int32 most tokens the row may produce
    done_b: jax.Array  # bool: stopped (stop token, budget) or an empty slot


@flax.struct.dataclass
class Picker:
    """How tokens are chosen: the key, the traced scalars and the static choices."""

    key: jax.Array
    temperature: jax.Array
    top_p: jax.Array
    greedy: bool = flax.struct.field(pytree_node=False)
    top_k: int = flax.struct.field(pytree_node=False)
    use_top_p: bool = flax.struct.field(pytree_node=False)
    stop_ids: tuple = flax.struct.field(pytree_node=False)
    pad_id: int = flax.struct.field(pytree_node=False)

    def keys(self, row_b, count_b):
        """The draw key of each row's next token (see the module docstring)."""
        per_row = lambda r, i: jax.random.fold_in(jax.random.fold_in(self.key, r), i)  # noqa: E731
        return jax.vmap(per_row)(row_b, count_b)

    def choose(self, logits_bv, row_b, count_b):
        return choose_tokens(logits_bv, self.keys(row_b, count_b), temperature=self.temperature,
                             top_p=self.top_p, greedy=self.greedy, top_k=self.top_k,
                             use_top_p=self.use_top_p)

    def is_stop(self, tok_b):
        stop_t = jnp.asarray(self.stop_ids or (-1,), jnp.int32)
        return jnp.any(tok_b[:, None] == stop_t[None, :], axis=-1)


def prefill(params, cfg: ModelConfig, prompt_bt, valid_bt, *, per_layer: bool, num_slots: int,
            index=0, extra_slots: int = 0):
    """Run left-padded prompts through the model into a KV cache of `num_slots + extra_slots`
    slots, written from slot `index` on; returns (the last prompt token's hidden state [b, d],
    the cache in decode layout)."""
    cache = init_cache(cfg, prompt_bt.shape[0], num_slots + extra_slots, per_layer=per_layer)
    cache = cache.replace(index=jnp.asarray(index, jnp.int32))
    h_btd, cache = model_prefill(params, cfg, prompt_bt, valid_bt, cache)
    return h_btd[:, -1], cache


def first_tokens(params, cfg: ModelConfig, pick: Picker, h_bd, valid_bt, row_b, budget_b, active_b):
    """Each row's token 0 from its prompt's last hidden state; returns (Rows, token, log-prob)
    with inactive rows padded, 0 log-prob and done."""
    logits_bv = logits_from_hidden(params, cfg, h_bd)
    tok_b = pick.choose(logits_bv, row_b, jnp.zeros_like(row_b))
    lp_b = jnp.where(active_b, policy_logprob(logits_bv, tok_b), 0.0)
    tok_b = jnp.where(active_b, tok_b, pick.pad_id)
    count_b = active_b.astype(jnp.int32)
    rows = Rows(tok_b=tok_b, pos_b=jnp.sum(valid_bt, axis=-1, dtype=jnp.int32), count_b=count_b,
                row_b=row_b, budget_b=budget_b,
                done_b=~active_b | pick.is_stop(tok_b) | (count_b >= budget_b))
    return rows, tok_b, lp_b


def advance(decode_params, cfg: ModelConfig, pick: Picker, rows: Rows, cache):
    """One decode step for every row: feed each row's last token, draw its next. Rows already
    done get the pad token and 0 log-prob and do not count. Returns (rows, cache, tok, lp)."""
    h_bd, cache = decode_step(decode_params, cfg, rows.tok_b, rows.pos_b, cache)
    rows, new_b, lp_b = draw_next(decode_params, cfg, pick, rows, h_bd)
    return rows, cache, new_b, lp_b


def draw_next(decode_params, cfg: ModelConfig, pick: Picker, rows: Rows, h_bd):
    """Each row's next token from its last hidden state (any cache layout's decode step):
    rows already done get the pad token and 0 log-prob and do not count.
    Returns (rows, tok, lp)."""
    logits_bv = logits_from_hidden(decode_params, cfg, h_bd)
    live_b = ~rows.done_b
    new_b = pick.choose(logits_bv, rows.row_b, rows.count_b)
    lp_b = jnp.where(live_b, policy_logprob(logits_bv, new_b), 0.0)
    new_b = jnp.where(live_b, new_b, pick.pad_id)
    count_b = rows.count_b + live_b.astype(jnp.int32)
    done_b = rows.done_b | pick.is_stop(new_b) | (count_b >= rows.budget_b)
    rows = rows.replace(tok_b=new_b, pos_b=rows.pos_b + 1, count_b=count_b, done_b=done_b)
    return rows, new_b, lp_b


def picker(key, sampling) -> Picker:
    """A SamplingConfig's Picker: a jit argument whose temperature and top_p are traced (no
    recompile per value) and whose other choices are static."""
    return Picker(key=key, temperature=jnp.float32(sampling.temperature or 1.0),
                  top_p=jnp.float32(sampling.top_p), greedy=sampling.greedy,
                  top_k=sampling.top_k, use_top_p=sampling.top_p < 1.0,
                  stop_ids=sampling.stop_token_ids, pad_id=sampling.pad_token_id)


def decode_loop(decode_params, cfg: ModelConfig, pick: Picker, rows: Rows, cache, toks_bn,
                lps_bn, first: int = 0):
    """`advance` for columns first..n-1 of toks_bn/lps_bn ([b, n]; each step writes its
    tokens and log-probs into the next column), exiting early once every row is done.
    Returns (steps run, rows, cache, toks_bn, lps_bn)."""
    n = toks_bn.shape[1]

    def cond(carry):
        return (carry[0] < n) & ~jnp.all(carry[1].done_b)

    def body(carry):
        j, rows, cache, toks_bn, lps_bn = carry
        rows, cache, tok_b, lp_b = advance(decode_params, cfg, pick, rows, cache)
        toks_bn = jax.lax.dynamic_update_slice_in_dim(toks_bn, tok_b[:, None], j, 1)
        lps_bn = jax.lax.dynamic_update_slice_in_dim(lps_bn, lp_b[:, None], j, 1)
        return j + 1, rows, cache, toks_bn, lps_bn

    j, rows, cache, toks_bn, lps_bn = jax.lax.while_loop(
        cond, body, (jnp.asarray(first, jnp.int32), rows, cache, toks_bn, lps_bn))
    return j - first, rows, cache, toks_bn, lps_bn
