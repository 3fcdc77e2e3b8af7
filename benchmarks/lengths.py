"""Response lengths for the rollout benchmarks: heavy-tailed, as RL rollouts are."""

from __future__ import annotations


def heavy_tailed(rng, n: int, median: float, sigma: float, cap: int):
    """n lengths from a log-normal of this median and sigma, rounded, clipped to [1, cap]
    (int32): most rows short, a few at the cap."""
    import numpy as np

    draws = np.exp(rng.normal(np.log(median), sigma, n))
    return np.clip(np.round(draws), 1, cap).astype(np.int32)
