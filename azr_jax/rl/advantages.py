"""Advantage estimators: pure numpy functions on the host, registered by name.

    fn(rewards[B], group_ids[B], *, lengths=None, prompt_ids=None, eps=...) -> float32[B]

One scalar reward per response in, one advantage per response out (the update step
broadcasts it over that response's tokens). ``lengths[B]`` are the responses' trained token
counts, ``prompt_ids[B]`` name the prompt each response answers (``prompt_ids(prompts)``).

- ``trr++`` (default, the official trainer's): REINFORCE++ whitening per (task type x role)
  group over response *tokens*. Every token of a response carries its reward R, so
  ``A = (R - token mean) / sqrt(unbiased token variance + eps)``: the mean is the
  length-weighted mean and the variance runs over all the group's tokens (veRL's
  ``masked_whiten`` inside ``compute_reinforce_plus_plus_outcome_advantage``, which AZR calls
  once per (task type, role) batch).
- ``trr++_seq``: the per-sequence form, ``(R - mean) / (population std + eps)`` per group.
- ``reinforce++``: the token whitening over the whole batch (groups ignored).
- ``grpo``: ``(R - mean) / (unbiased std + eps)`` among the samples of one prompt. Needs
  several samples per prompt (AZR samples each prompt once: use trr++).

Degenerate groups (one token or sample, equal rewards) and empty responses get 0, never NaN.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from azr_jax.errors import UserError

EPS = 1e-8  # official: inside the square root of the token variance
SEQ_EPS = 1e-6  # the per-sequence forms add it to the standard deviation
AdvantageFn = Callable[..., np.ndarray]
_REGISTRY: dict[str, AdvantageFn] = {}


def register(name: str):
    def deco(fn: AdvantageFn) -> AdvantageFn:
        _REGISTRY[name] = fn
        return fn
    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> AdvantageFn:
    """The estimator called ``name``; unknown names raise UserError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown advantage estimator {name!r}; known: "
                        f"{', '.join(names())}") from None


def prompt_ids(prompts: Sequence[Sequence[int]]) -> np.ndarray:
    """int64[B]: equal token sequences get equal ids (the ``prompt_ids`` of ``grpo``)."""
    index: dict[tuple, int] = {}
    return np.asarray([index.setdefault(tuple(p), len(index)) for p in prompts], np.int64)


def _column(name: str, values, size: int, dtype) -> np.ndarray:
    x = np.asarray(values, dtype=dtype).reshape(-1)
    if x.shape[0] != size:
        raise ValueError(f"{size} rewards but {x.shape[0]} {name}")
    return x


def _rewards_and_groups(rewards, group_ids) -> tuple[np.ndarray, np.ndarray]:
    r_b = np.asarray(rewards, dtype=np.float64).reshape(-1)
    g_b = np.unique(_column("group ids", group_ids, r_b.shape[0], None), return_inverse=True)[1]
    return r_b, g_b.reshape(-1)


def _lengths(lengths, size: int, estimator: str) -> np.ndarray:
    if lengths is None:
        raise ValueError(f"{estimator} whitens over response tokens: pass lengths=")
    n_b = _column("lengths", lengths, size, np.float64)
    if np.any(n_b < 0):
        raise ValueError("response lengths must be >= 0")
    return n_b


def token_whiten(rewards, group_ids, lengths, eps: float = EPS) -> np.ndarray:
    """``(R - mu_g) / sqrt(var_g + eps)`` with response i's reward counted ``lengths[i]``
    times in its group's mean and unbiased variance (veRL's masked_whiten on outcome
    rewards); responses with no tokens get 0."""
    r_b, g_b = _rewards_and_groups(rewards, group_ids)
    n_b = _lengths(lengths, r_b.shape[0], "token whitening")
    tokens_g = np.bincount(g_b, weights=n_b)
    mean_g = np.bincount(g_b, weights=n_b * r_b) / np.maximum(tokens_g, 1.0)
    centred_b = r_b - mean_g[g_b]
    # Bessel's correction over tokens; a group of <= 1 token has centred value 0 anyway.
    var_g = np.bincount(g_b, weights=n_b * centred_b**2) / np.maximum(tokens_g - 1.0, 1.0)
    adv_b = centred_b / np.sqrt(var_g[g_b] + eps)
    return np.where(n_b > 0, adv_b, 0.0).astype(np.float32)


def sequence_normalise(rewards, group_ids, eps: float = SEQ_EPS, ddof: int = 0,
                       min_count: int = 1) -> np.ndarray:
    """``(R - mean_g) / (std_g + eps)`` over the responses of each group (std with ``ddof``);
    groups with fewer than ``min_count`` members get 0."""
    r_b, g_b = _rewards_and_groups(rewards, group_ids)
    count_g = np.bincount(g_b).astype(np.float64)
    mean_g = np.bincount(g_b, weights=r_b) / count_g
    centred_b = r_b - mean_g[g_b]
    std_g = np.sqrt(np.bincount(g_b, weights=centred_b**2) / np.maximum(count_g - ddof, 1.0))
    adv_b = centred_b / (std_g[g_b] + eps)
    return np.where(count_g[g_b] >= min_count, adv_b, 0.0).astype(np.float32)


@register("trr++")
def trr_plus_plus(rewards, group_ids, *, lengths=None, prompt_ids=None, eps: float = EPS):
    """Task-relative REINFORCE++ (official): token whitening within each (type x role) group."""
    return token_whiten(rewards, group_ids, lengths, eps)


@register("trr++_seq")
def trr_plus_plus_seq(rewards, group_ids, *, lengths=None, prompt_ids=None,
                      eps: float = SEQ_EPS):
    """TRR++ with one sample per response (lengths ignored): per-group mean and std."""
    return sequence_normalise(rewards, group_ids, eps)


@register("reinforce++")
def reinforce_plus_plus(rewards, group_ids, *, lengths=None, prompt_ids=None,
                        eps: float = EPS):
    """REINFORCE++: token whitening over the whole batch (groups ignored)."""
    r_b = np.asarray(rewards, dtype=np.float64).reshape(-1)
    _column("group ids", group_ids, r_b.shape[0], None)
    return token_whiten(r_b, np.zeros(r_b.shape, np.int64), lengths, eps)


@register("grpo")
def grpo(rewards, group_ids, *, lengths=None, prompt_ids=None, eps: float = SEQ_EPS):
    """GRPO: normalise among the samples of one prompt (within its group), unbiased std."""
    r_b, g_b = _rewards_and_groups(rewards, group_ids)
    if prompt_ids is None:
        raise ValueError("grpo groups responses by prompt: pass prompt_ids=")
    p_b = _column("prompt ids", prompt_ids, r_b.shape[0], np.int64)
    keys_b = np.unique(np.stack([g_b, p_b], 1), axis=0, return_inverse=True)[1].reshape(-1)
    if r_b.size and np.bincount(keys_b).max() < 2:
        raise UserError("rl.estimator=grpo needs several samples of a prompt, but every "
                        "prompt here was sampled once (AZR's rollouts are): use trr++")
    return sequence_normalise(r_b, keys_b, eps, ddof=1, min_count=2)
