"""The unbiased pass@k estimator (Chen et al., 2021), the one copy: stdlib only, below
everything, so the executor's CRUXEval scorer and the eval suites share it."""

from __future__ import annotations

import math


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct:
    1 - C(n-c, k) / C(n, k) as a stable product; 1.0 when n - c < k (the official
    CRUXEval and human-eval formula, so also when k > n; `evals.passk` refuses k > n)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / x for x in range(n - c + 1, n + 1))
