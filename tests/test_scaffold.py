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


def test_one_training_step_with_a_scaffolded_proposer(tmp_path, monkeypatch):
    """Through the real rollout, sandbox and update step (configs/tiny_cpu.py): the
    deduction proposer closes its program block and stops; the scaffold opens the input
    block, the second call writes the input, and the proposal is valid. The update batch
    trains on the sampled tokens only."""
    from azr_jax.pipeline import rollout as rollout_mod
    from azr_jax.pipeline.config import load_config
    from azr_jax.sampling.sampler import SampleOutput
    from canned_sampling import train_capturing
    from azr_jax.tokenizer import tiny_tokenizer

    tok = tiny_tokenizer()
    inserted = "\n```input\n"
    program = "ok</think><answer>```python\ndef f(x):\n    return x * 2\n```"
    calls = []

    def respond(prompt: str) -> str:
        if "new deduction task" not in prompt:
            return "no answer"  # every other row: a format error
        return "3\n```</answer>" if prompt.endswith(inserted) else program + " and prose"

    def sample(params, cfg, prompts, key, sampling, mesh=None, budgets=None):
        calls.append(budgets)
        n, rows = sampling.num_samples, len(prompts) * sampling.num_samples
        tokens = np.full((rows, sampling.max_new_tokens), sampling.pad_token_id, np.int32)
        logprobs = np.zeros((rows, sampling.max_new_tokens), np.float32)
        lengths = np.zeros((rows,), np.int32)
        for r in range(rows):
            ids = tok.encode(respond(tok.decode(prompts[r // n], skip_special_tokens=False)))
            ids = ids[: sampling.max_new_tokens if budgets is None else budgets[r]]
            tokens[r, : len(ids)], logprobs[r, : len(ids)], lengths[r] = ids, -1.0, len(ids)
        return SampleOutput(tokens, logprobs, lengths, np.repeat(np.arange(len(prompts)), n))

    monkeypatch.setattr(rollout_mod, "sample", sample)
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "sampling.max_new_tokens=128"])
    cfg.scaffold.deduction_propose = (inserted,)
    _, (ro,) = train_capturing(cfg, str(tmp_path / "run"))
    assert ro.metrics["valid_rate/deduction"] == 1.0  # both proposals, with their inputs
    assert ro.metrics["valid_rate/abduction"] == 0.0
    rows = [r for r in ro.task_rows if r["type"] == "deduction"]
    assert all(r["input"] == "3" and "return x * 2" in r["program"] for r in rows)
    # the second proposer call continued just the two deduction rows, within their budget
    second = calls[1]
    assert len(second) == 2 and all(b == 128 - len(tok.encode(program + inserted)) for b in second)
    # in the update batch, each proposal's inserted tokens are context without loss
    want_ids = tok.encode(program) + tok.encode(inserted) + tok.encode("3\n```</answer>")
    batch = ro.batch
    found = 0
    for i in range(batch["tokens_bt"].shape[0]):
        row = batch["tokens_bt"][i][batch["valid_bt"][i]].tolist()
        if row[-len(want_ids):] != want_ids:
            continue
        found += 1
        mask = batch["loss_mask_bt"][i][-len(want_ids):]
        k, m = len(tok.encode(program)), len(tok.encode(inserted))
        assert mask[:k].all() and not mask[k:k + m].any() and mask[k + m:].all()
    assert found == 2
