"""Issue 29.2 and 29.3 end to end: one real training step (configs/tiny_cpu.py, R1 prompts,
official rules) with scripted responses, as in tests/test_official_step.py.

A deduction proposal with valid code but a broken format (no ``</think>``) is validated,
joins the buffer and gets its learnability estimate; only its reward is -1
(reward_managers.py, gen block). The learnability rollouts carry no ``<think>`` at all and
are read from their last ``<answer>`` (reward_managers.py, "Estimating Accuracy")."""

import numpy as np
import pytest

from azr_jax.pipeline import rollout as rollout_mod
from azr_jax.pipeline.config import load_config
from canned_sampling import scripted_sample, train_capturing
from tests.test_official_step import kind_responder

TWICE = "def f(x):\n    return x * 2"
MINUS = "def f(x):\n    return x - 1"
JUNK = "ok</think><answer>nothing</answer>"  # formatted, unparsable / wrong
SCRIPT = {  # the turn already opened with "<think>"
    "propose_deduction": [f"ok</think><answer>```python\n{TWICE}\n```\n```input\n3\n```</answer>",
                          # valid code, no </think>: a format failure
                          f"I will write <answer>```python\n{MINUS}\n```\n```input\n5\n```</answer>"],
    # learnability, per task: no </think> anywhere, read from the last <answer>
    ("learn_deduction", TWICE): ["<answer>6</answer>", "<answer>7</answer>"],      # s = 1/2
    ("learn_deduction", MINUS): ["<answer>4</answer>", "I say <answer>0</answer>"],  # s = 1/2
}
REWARDS = {"deduction": [0.5, -1.0],   # 1 - s; format failure -1 whatever s
           "abduction": [-1.0, -1.0], "induction": [-1.0, -1.0]}  # unparsable


def _response(kind: str, prompt: str, k: int) -> str:
    if kind == "learn_deduction":
        program = TWICE if TWICE in prompt else MINUS
        return SCRIPT[(kind, program)][k % 2]
    return SCRIPT[kind][k] if kind in SCRIPT else JUNK


@pytest.fixture
def scripted(monkeypatch):
    respond, lengths = kind_responder(_response)
    monkeypatch.setattr(rollout_mod, "sample", scripted_sample(respond))
    return lengths


def test_format_broken_valid_proposal_is_kept_and_estimated(tmp_path, scripted):
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "sampling.max_new_tokens=128"])
    assert cfg.selfplay.num_rollouts == 2
    _, (ro,) = train_capturing(cfg, str(tmp_path / "run"))
    rows = [r for r in ro.task_rows if r["type"] == "deduction"]
    assert [(r["valid"], r["formatted"], r["reward"], r["solve_rate"]) for r in rows] == [
        (True, True, 0.5, 0.5), (True, False, -1.0, 0.5)]
    m = ro.metrics
    assert m["buffer/deduction"] == 3  # the identity seed + both valid tasks
    assert m["valid_rate/deduction"] == 1.0 and m["format_error/deduction_propose"] == 0.5
    assert m["learnability_rate/deduction"] == 0.5
    for t, want in REWARDS.items():
        assert m[f"reward/{t}_propose"] == pytest.approx(np.mean(want)), t
    # the proposer group's advantages: token whitening of (0.5, -1.0) over their lengths
    (la, lb), (a, b) = scripted["propose_deduction"], REWARDS["deduction"]
    mean = (la * a + lb * b) / (la + lb)
    std = np.sqrt((la * (a - mean) ** 2 + lb * (b - mean) ** 2) / (la + lb - 1) + 1e-8)
    want = [(a - mean) / std, (b - mean) / std]
    assert m["adv_mean/deduction_propose"] == pytest.approx(np.mean(want), abs=1e-6)
    assert m["adv_std/deduction_propose"] == pytest.approx(np.std(want), rel=1e-5)


def test_loss_weighting_of_the_step_is_verls(tmp_path, scripted):
    """The step's update batch weighs its tokens as verl does: micro-batches of
    ``rl.micro_rows`` rows in batch order, each its own token mean, divided by their count
    (rl.aggregation="micro_token_mean"), worked out here by hand from the loss mask."""
    from azr_jax.rl.losses import row_weights

    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "sampling.max_new_tokens=128", "rl.micro_rows=4"])
    _, (ro,) = train_capturing(cfg, str(tmp_path / "run"))
    mask_bt = np.asarray(ro.batch["loss_mask_bt"], np.float64)
    tokens_b = mask_bt.sum(axis=1)
    assert (tokens_b > 0).sum() == 12  # 6 groups of 2 rows, one mini-batch
    chunks = [slice(i, i + 4) for i in range(0, len(tokens_b), 4)]
    live = [c for c in chunks if tokens_b[c].sum() > 0]
    assert len(live) == 3
    want = np.zeros_like(tokens_b)
    for c in live:
        want[c] = 1.0 / (len(live) * tokens_b[c].sum())
    got = np.asarray(row_weights(mask_bt.astype(np.float32), cfg.rl.aggregation,
                                 cfg.rl.micro_rows))  # what the update step uses
    np.testing.assert_allclose(got[tokens_b > 0], want[tokens_b > 0], rtol=1e-6)  # padding: no tokens
    # each micro-batch gets a third of the gradient whatever its length
    np.testing.assert_allclose([(got * tokens_b)[c].sum() for c in live], [1 / 3] * 3,
                               rtol=1e-6)
