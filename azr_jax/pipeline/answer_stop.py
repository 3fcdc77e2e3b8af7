"""A small-model lever (``selfplay.close_answer``, default off): end each answer where its
last required code fence closes, and close ``<answer>`` there.

SmolLM2-135M writes the fenced blocks an answer needs but then either stops (EOS) without
``</answer>`` or rambles on in prose, so under the official format every response is a
format error (-1) and every advantage is 0. With the lever a response is cut right after
the fence that completes its answer (the task type's ``fences_needed``: e.g. solver 1
block, deduction proposer program + input, induction proposer ``num_inputs`` inputs +
message), like a stop sequence: the
tokens after the cut are dropped from the update batch, and the parsed text gets
``</answer>`` appended (never trained on). The official rule stays the default.
"""

from __future__ import annotations

from azr_jax.selfplay import registry

FENCE = "```"


def fences_needed(task_type: str, role: str, num_inputs: int) -> int:
    """Code blocks a complete answer of this (type, role) holds (the type's rule)."""
    return registry.get(task_type).fences_needed(role, num_inputs)


def cut_index(decode, tokens, prefix: str, need: int) -> int | None:
    """The fewest leading tokens whose text (after ``prefix``) closes the ``need``-th code
    block of the answer, or None when the response never does."""
    opened = prefix.rsplit("<answer>", 1)[-1].count(FENCE) if "<answer>" in prefix else 0
    if (decode(tokens) + "").count(FENCE) + opened < 2 * need:
        return None
    lo, hi = 1, len(tokens)  # fence markers only grow with k: binary search the first k
    while lo < hi:
        mid = (lo + hi) // 2
        if decode(tokens[:mid]).count(FENCE) + opened >= 2 * need:
            hi = mid
        else:
            lo = mid + 1
    return lo


def cut_responses(decode, toks, lps, prefixes, needs):
    """Each (tokens, logprobs) cut after its answer's last required fence (else as is)."""
    out_t, out_l = [], []
    for t, lp, p, need in zip(toks, lps, prefixes, needs):
        k = cut_index(decode, t, p, need)
        out_t.append(t if k is None else t[:k])
        out_l.append(lp if k is None else lp[:k])
    return out_t, out_l


def close_answer(turn: str) -> str:
    """``turn`` + ``</answer>`` when it ends right after a closed code fence inside an open
    ``<answer>``; otherwise ``turn`` unchanged."""
    body = turn.rstrip()
    tail = body.rsplit("<answer>", 1)[-1] if "<answer>" in body else None
    if tail is None or "</answer>" in tail or not body.endswith(FENCE) or tail.count(FENCE) % 2:
        return turn
    return body + "\n</answer>"
