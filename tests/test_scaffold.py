"""The scaffold lever (pipeline/scaffold.py): text written into a response after a closed
code block, sampling resumed behind it, the inserted tokens kept out of the loss."""

import jax
import numpy as np
import pytest

from azr_jax.pipeline import scaffold
from azr_jax.pipeline.batching import advantages_and_batch, build_batch

KEY = jax.random.PRNGKey(0)
# one token per character
encode = lambda s: [ord(c) for c in s]  # noqa: E731
decode = lambda t: "".join(chr(i) for i in t)  # noqa: E731


def scripted(stages):
    """A generate() answering each call's k-th prompt with ``stages[call][k]`` (cut to the
    row's budget); records the calls."""
    calls = []

    def generate(prompts, key, budgets):
        texts = stages[len(calls)]
        calls.append((list(prompts), list(budgets)))
        toks = [encode(t)[:b] for t, b in zip(texts, budgets)]
        return toks, [np.full(len(t), -0.5, np.float32) for t in toks]
    return generate, calls


PREFIX = "<answer>\n```python\ndef f("  # opens block 1


def test_inserts_after_each_closed_block_and_resumes():
    generate, calls = scripted([
        ["x):\n    return x\n```\nprose that is dropped", "x): pass"],  # row 1 never closes
        ["3\n```\ntail"],
    ])
    toks, lps = scaffold.scaffolded(
        generate, decode, encode, [encode("P0"), encode("P1")], [PREFIX, PREFIX],
        [("\n```input\n",), ("\n```input\n",)], key=KEY, max_new_tokens=64)
    assert decode(toks[0]) == "x):\n    return x\n```\n```input\n3\n```\ntail"
    assert decode(toks[1]) == "x): pass"  # its block never closed: left as sampled
    # the second call continues row 0 only: its prompt is prompt + response so far
    prompts, budgets = calls[1]
    assert prompts == [encode("P0") + encode("x):\n    return x\n```\n```input\n")]
    assert budgets == [64 - len("x):\n    return x\n```\n```input\n")]
    nan = np.isnan(lps[0])
    inserted = decode([t for t, m in zip(toks[0], nan) if m])
    assert inserted == "\n```input\n"  # exactly the inserted tokens carry NaN
    assert not np.isnan(lps[1]).any() and len(lps[0]) == len(toks[0])


def test_several_stages_and_budget():
    # induction-like: the prefix opens an input block; two more blocks are opened for it
    pre = "<answer>\n```input\n"
    generate, calls = scripted([["1\n```\nxx"], ["2\n```\nyy"], ["hello\n```zz"]])
    toks, lps = scaffold.scaffolded(generate, decode, encode, [encode("P")], [pre],
                                    [("\n```input\n", "\n```message\n")], key=KEY,
                                    max_new_tokens=64)
    assert decode(toks[0]) == "1\n```\n```input\n2\n```\n```message\nhello\n```zz"
    assert len(calls) == 3
    # a budget too small for the inserted text ends the row at its closed block
    generate, _ = scripted([["1\n```\nxx"]])
    toks, lps = scaffold.scaffolded(generate, decode, encode, [encode("P")], [pre],
                                    [("\n```input\n",)], key=KEY, max_new_tokens=8)
    assert decode(toks[0]) == "1\n```" and not np.isnan(lps[0]).any()


def test_no_scaffold_is_one_plain_call():
    generate, calls = scripted([["abc", "de"]])
    toks, lps = scaffold.scaffolded(generate, decode, encode, [[1], [2]], ["", ""], [(), ()],
                                    key=KEY, max_new_tokens=16)
    assert [decode(t) for t in toks] == ["abc", "de"] and len(calls) == 1


def test_inserted_tokens_get_no_loss_and_do_not_count_for_advantages():
    prompts, responses = [[5, 6], [7]], [[1, 2, 3, 4], [8, 9]]
    lps = [np.array([-1.0, np.nan, np.nan, -2.0], np.float32), np.array([-1.0, -1.0], np.float32)]
    b = build_batch(prompts, responses, lps, np.ones(2, np.float32), length=8)
    np.testing.assert_array_equal(b["loss_mask_bt"][0, -4:], [1, 0, 0, 1])
    np.testing.assert_array_equal(b["old_logprobs_bt"][0, -4:], [-1, 0, 0, -2])
    np.testing.assert_array_equal(b["tokens_bt"][0, -6:], [5, 6, 1, 2, 3, 4])  # kept as context
    assert np.isfinite(b["old_logprobs_bt"]).all()
    # token whitening weighs each response by its trained tokens: 2 and 2 here, so the
    # two rewards get advantages of equal size (with the 4 tokens of row 0 they would not)
    adv, _ = advantages_and_batch(prompts, responses, lps, [1.0, -1.0], [0, 0])
    assert adv[0] == pytest.approx(-adv[1])


def test_for_rows_reads_the_config_section():
    cfg = {"deduction_propose": ("\n```input\n",), "induction_propose": ()}
    assert scaffold.for_rows(cfg, ["deduction_propose", "induction_propose", "x"]) == [
        ("\n```input\n",), (), ()]
