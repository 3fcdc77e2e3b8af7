"""A small-model lever (config ``scaffold``, empty by default): the rollout writes the
opening of an answer's next code block for the model.

SmolLM2-135M writes a proposer's program block but then never the ``input`` block that must
follow it (BENCHMARKS.md, "Learning"), so every proposal is a format error and the proposer
group has no reward differences to learn from. ``prefix`` can open only the first block, as
the prompt's last words. A scaffold continues the idea inside the response: ``scaffold
["{type}_{role}"]`` is a tuple of texts; the k-th is inserted right after the response
closes its (k+1)-th code block (counting blocks the prefix opened), and sampling resumes
from there. A response that never closes that block is left as sampled.

The inserted tokens are context, not actions: their log-probs are NaN, and the batch
builder gives NaN tokens no loss (``batching.build_batch``). Each sampling stage uses its
own key folded from the rollout's, so a (seed, step) still repeats exactly.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from azr_jax.pipeline import answer_stop

# (prompts, key, budgets) -> (token lists, log-prob arrays); one sampler call
Generate = Callable[[list, object, list], tuple[list, list]]


def scaffolded(generate: Generate, decode, encode, prompts: Sequence[Sequence[int]],
               prefixes: Sequence[str], scaffolds: Sequence[tuple[str, ...]], key,
               max_new_tokens: int):
    """Sample ``prompts``; each row r inserts ``scaffolds[r]`` (see the module docstring).

    Returns (token lists, float32 log-prob arrays): sampled tokens with their log-probs,
    inserted tokens with NaN. No row exceeds ``max_new_tokens`` tokens in all."""
    rows = len(prompts)
    toks, lps = generate(list(prompts), key, [max_new_tokens] * rows)
    toks, lps = [list(t) for t in toks], [np.asarray(lp, np.float32) for lp in lps]
    stages = max((len(s) for s in scaffolds), default=0)
    for k in range(stages):
        pending, budgets = [], []
        for r in range(rows):
            if k >= len(scaffolds[r]):
                continue
            cut = answer_stop.cut_index(decode, toks[r], prefixes[r], need=k + 1)
            if cut is None:  # block k+1 never closed: nothing to continue
                continue
            forced = list(encode(scaffolds[r][k]))
            budget = max_new_tokens - cut - len(forced)
            toks[r], lps[r] = toks[r][:cut], lps[r][:cut]
            if budget <= 0:
                continue
            toks[r] += forced
            lps[r] = np.concatenate([lps[r], np.full(len(forced), np.nan, np.float32)])
            pending.append(r)
            budgets.append(budget)
        if not pending:
            break
        more_t, more_l = generate([list(prompts[r]) + toks[r] for r in pending],
                                  jax.random.fold_in(key, k + 1), budgets)
        for r, t, lp in zip(pending, more_t, more_l):
            toks[r] += list(t)
            lps[r] = np.concatenate([lps[r], np.asarray(lp, np.float32)])
    return toks, lps


def for_rows(scaffold: dict, keys: Sequence[str]) -> list[tuple[str, ...]]:
    """Each row's scaffold texts from the config section (``"{type}_{role}"`` -> texts)."""
    return [tuple(scaffold.get(k, ())) for k in keys]
