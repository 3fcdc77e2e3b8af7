"""End to end under the official rules: scripted responses stand in for the sampler, and one
real training step (configs/tiny_cpu.py: R1 prompts, real sandbox, rewards, TRR++, sharded
update) runs. Its rewards and advantages must equal the values worked out by hand below."""


import numpy as np
import pytest

from azr_jax.pipeline import rollout as rollout_mod
from azr_jax.pipeline.config import load_config
from canned_sampling import response_length, scripted_sample, train_capturing

BANNED = "import random\ndef f(x):\n    return random.random()"
NO_THINK_END = "I think <answer>1</answer>"  # no </think>: a format error
# What each kind of prompt gets, row by row (the turn already opened with "<think>").
# Identity seed: def f(a): return a on "Hello world"; its induction seed has 6 pairs.
SCRIPT = {
    # 1. proposals (one call, 2 per type)
    "propose_deduction": ["```python\ndef double(x):\n    return x * 2\n```\n```input\n3\n```",
                          f"```python\n{BANNED}\n```\n```input\n1\n```"],   # invalid: -1
    "propose_abduction": ["```python\ndef f(x):\n    return x + 1\n```\n```input\n1\n```",
                          NO_THINK_END],                                   # unparsable: -1
    "propose_induction": ["".join(f"```input\n{i}\n```\n" for i in (1, 2, 2, "'z'"))
                          + "```message\nsame\n```",
                          "```input\n1\n```\n```message\nm\n```"],         # 1 of 4 inputs: -1
    # 2. learnability (2 rollouts per valid proposal)
    "learn_deduction": ["```output\n6\n```", "```output\n7\n```"],        # s = 1/2 -> 0.5
    "learn_abduction": ["```input\n1\n```", "```input\nx=1\n```"],        # s = 1 -> -0.5
    "learn_induction": ["```python\ndef f(x):\n    return 0\n```"] * 2,    # s = 0 -> -0.5
    # 3. solver batch: nothing new last step, so both tasks are the identity seed
    "solve_deduction": ["```output\n'Hello world'\n```", "```output\n'bye'\n```"],  # 1, -0.5
    "solve_abduction": ["```input\n'Hello world'\n```", NO_THINK_END],             # 1, -1
    "solve_induction": ["```python\ndef f(a):\n    return a\n```",
                        "```python\ndef f(a):\n    return 1\n```"],                # 1, -0.5
}
REWARDS = [0.5, -1.0, -0.5, -1.0, -0.5, -1.0,   # propose: deduction, abduction, induction
           1.0, -0.5, 1.0, -1.0, 1.0, -0.5]     # solve: deduction, abduction, induction
MARKERS = [("propose_deduction", "new deduction task"), ("propose_abduction", "new abduction task"),
           ("propose_induction", "and a ```message"), ("solve_deduction", "give ```output"),
           ("solve_abduction", "give ```input"), ("solve_induction", "give ```python")]


def _kind(prompt_text: str, num_samples: int) -> str:
    kind = next(k for k, marker in MARKERS if marker in prompt_text)
    return kind.replace("solve", "learn") if num_samples > 1 else kind


def _response(kind: str, k: int) -> str:
    body = SCRIPT[kind][k]
    return body if body == NO_THINK_END else f"ok</think><answer>{body}</answer>"


def kind_responder(response_for):
    """(respond for `scripted_sample`, the response lengths by kind): each row's text is
    `response_for(kind, prompt_text, k)`, k counting that kind's rows in the call."""
    lengths_by_kind: dict[str, list[int]] = {}
    seen: dict[str, int] = {}

    def respond(prompt_text, n, row):
        if row == 0:
            seen.clear()  # each sampling call counts its kinds from 0
        kind = _kind(prompt_text, n)
        k = seen[kind] = seen.get(kind, -1) + 1
        text = response_for(kind, prompt_text, k)
        lengths_by_kind.setdefault(kind, []).append(response_length(text))
        return text

    return respond, lengths_by_kind


@pytest.fixture
def scripted(monkeypatch):
    respond, lengths_by_kind = kind_responder(lambda kind, _prompt, k: _response(kind, k))
    monkeypatch.setattr(rollout_mod, "sample", scripted_sample(respond))
    return lengths_by_kind


def _hand_advantages(rewards, lengths):
    """Per (type, role) group of 2: the official token whitening, every token carrying its
    response's reward: (R - token mean) / sqrt(unbiased token variance + 1e-8)."""
    out = []
    for g in range(0, len(rewards), 2):
        (a, b), (la, lb) = rewards[g:g + 2], lengths[g:g + 2]
        mean = (la * a + lb * b) / (la + lb)
        var = (la * (a - mean) ** 2 + lb * (b - mean) ** 2) / (la + lb - 1)
        out += [(a - mean) / np.sqrt(var + 1e-8), (b - mean) / np.sqrt(var + 1e-8)]
    return out


def test_one_official_training_step(tmp_path, scripted):
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "sampling.max_new_tokens=128"])
    assert cfg.selfplay.reward_rule == "official" and cfg.selfplay.prompt_format == "r1"
    result, (ro,) = train_capturing(cfg, str(tmp_path / "run"))
    order = ["propose_deduction", "propose_abduction", "propose_induction",
             "solve_deduction", "solve_abduction", "solve_induction"]
    lengths = [n for kind in order for n in scripted[kind]]
    want = _hand_advantages(REWARDS, lengths)
    m = ro.metrics
    for i, (t, role) in enumerate([(t, r) for r in ("propose", "solve")
                                   for t in ("deduction", "abduction", "induction")]):
        pair = slice(2 * i, 2 * i + 2)
        assert m[f"reward/{t}_{role}"] == pytest.approx(np.mean(REWARDS[pair])), (t, role)
        # a pair of advantages is fixed by its mean and (population) std
        assert m[f"adv_mean/{t}_{role}"] == pytest.approx(np.mean(want[pair]), abs=1e-6)
        assert m[f"adv_std/{t}_{role}"] == pytest.approx(np.std(want[pair]), rel=1e-5)
    # the update batch holds the same advantages (its rows may be laid out by group)
    got = ro.batch["advantages_b"][ro.batch["loss_mask_bt"].sum(axis=1) > 0]
    np.testing.assert_allclose(np.sort(got), np.sort(want), rtol=1e-5, atol=1e-6)
    # rows in the official update order (one mini-batch here): abduction, deduction,
    # induction, each proposer then solver (azr_ray_trainer.py concatenates them so)
    official = [order.index(k) for k in ("propose_abduction", "solve_abduction",
                                         "propose_deduction", "solve_deduction",
                                         "propose_induction", "solve_induction")]
    want_rows = [want[2 * i + j] for i in official for j in (0, 1)]
    np.testing.assert_allclose(got, want_rows, rtol=1e-5, atol=1e-6)
    assert m["valid_rate/deduction"] == 0.5 and m["learnability_rate/abduction"] == 1.0
    assert np.isfinite(result.last_metrics["loss"])
    # the valid proposals joined the buffers (the identity seed + 1 each)
    assert [m[f"buffer/{t}"] for t in ("deduction", "abduction", "induction")] == [2, 2, 2]
    # the run's report names the reward rule in use
    from azr_jax.pipeline.report import build_report
    assert "Reward rule: official; prompts: r1." in open(build_report(str(tmp_path / "run"))).read()
