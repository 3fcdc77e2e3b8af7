"""Advantage estimators: pure functions ``(rewards[B], group_ids[B]) -> advantages[B]``.

Registered by name (``get("trr++")``). All run on host (numpy): rewards come from the
executor on the host, and the result is one float per sequence that the update step
broadcasts over that sequence's tokens. Standard deviations are population ones (ddof=0),
so a group of one sample, or of equal rewards, gets advantage 0 and never NaN.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from azr_jax.errors import UserError

EPS = 1e-6
AdvantageFn = Callable[..., np.ndarray]  # (rewards[B], group_ids[B], eps=EPS) -> [B]
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


def _as_arrays(rewards, group_ids) -> tuple[np.ndarray, np.ndarray]:
    r_b = np.asarray(rewards, dtype=np.float64).reshape(-1)
    g_b = np.asarray(group_ids).reshape(-1)
    if r_b.shape != g_b.shape:
        raise ValueError(f"{r_b.shape[0]} rewards but {g_b.shape[0]} group ids")
    return r_b, g_b


def grouped_normalise(rewards, group_ids, eps: float = EPS) -> np.ndarray:
    """``(r - mean_g) / (std_g + eps)`` within each group of equal ``group_ids``."""
    r_b, g_b = _as_arrays(rewards, group_ids)
    _, inv_b, count_g = np.unique(g_b, return_inverse=True, return_counts=True)
    mean_g = np.bincount(inv_b, weights=r_b) / count_g
    centred_b = r_b - mean_g[inv_b]
    std_g = np.sqrt(np.bincount(inv_b, weights=centred_b**2) / count_g)
    return (centred_b / (std_g[inv_b] + eps)).astype(np.float32)


@register("trr++")
def trr_plus_plus(rewards, group_ids, eps: float = EPS) -> np.ndarray:
    """Task-relative REINFORCE++: normalise within each (task type x role) group."""
    return grouped_normalise(rewards, group_ids, eps)


@register("reinforce++")
def reinforce_plus_plus(rewards, group_ids, eps: float = EPS) -> np.ndarray:
    """REINFORCE++: one global baseline and scale over the whole batch (groups ignored)."""
    r_b, _ = _as_arrays(rewards, group_ids)
    return grouped_normalise(r_b, np.zeros(r_b.shape, np.int64), eps)


@register("grpo")
def grpo(rewards, group_ids, eps: float = EPS) -> np.ndarray:
    """GRPO: ``group_ids`` name the prompt; normalise among samples of the same prompt."""
    return grouped_normalise(rewards, group_ids, eps)
