"""Several real training steps of configs/tiny_cpu.py on 8 fake devices (mesh 2x2x2).

The tiny random model writes gibberish, so a test responder replaces some sampled rows with
well-formed responses (the rest stay the model's own): proposals become valid, buffers
grow, and all 6 (type x role) groups see different outcomes. Everything else is the real
pipeline: sandbox validation and grading, rewards, TRR++, sharded updates, checkpoints.
"""

import json
import os

import numpy as np
import pytest

from azr_jax.pipeline import rollout as rollout_mod
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline.metrics import read_metrics
from azr_jax.pipeline.report import build_report
from azr_jax.pipeline.tasklog import read_solves, read_tasks
from azr_jax.pipeline.trainer import train
from azr_jax.selfplay import GROUPS

# tiny_cpu fits any device count (fsdp=-1); here every mesh axis really shards.
MESH_222 = ["mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2"]


def _canned(prompt_text: str, row: int, call: int = 0) -> str | None:
    """A well-formed response for the kind of prompt (configs/prompts/tiny.json), for odd
    rows; None keeps the model's. The R1 prompt already opened the turn with <think>.
    Proposals differ from one sampling call to the next (``call``): the seeding phase drops
    a triplet the pool already holds, as the official does."""
    if row % 2 == 0:
        return None
    if "and a ```message" in prompt_text:  # induction proposer: 4 inputs + a message
        return ("ok</think><answer>```input\n1\n```\n```input\n'ab'\n```\n```input\n1\n```\n"
                "```input\n[2]\n```\n```message\nsame\n```</answer>")
    if "Propose a new" in prompt_text:  # deduction/abduction proposer
        k = row % 5
        body = f"x * {k}" if row % 3 else "undefined_name"  # some invalid (NameError)
        return (f"ok</think><answer>\n```python\ndef f(x):\n    return {body}\n```\n"
                f"```input\n{row + 1000 * call}\n```\n</answer>")
    if "give ```python" in prompt_text:  # induction solver
        return "ok</think><answer>\n```python\ndef f(a):\n    return a\n```\n</answer>"
    return "ok</think><answer>'Hello world'</answer>"  # deduction/abduction solver


@pytest.fixture
def responder(monkeypatch):
    from canned_sampling import canned_sample

    calls = [0]

    def sample(*args, **kwargs):
        calls[0] += 1
        return inner(*args, **kwargs)

    def respond(text, row):
        return _canned(text, row, calls[0])

    inner = canned_sample(rollout_mod.sample, respond)
    monkeypatch.setattr(rollout_mod, "sample", sample)


def test_tiny_cpu_training_steps(tmp_path, responder):
    cfg = load_config("tiny_cpu", ["trainer.steps=3", "sampling.max_new_tokens=128", *MESH_222,
                                   "selfplay.seed_batch_factor=1"])
    workdir = str(tmp_path / "run")
    result = train(cfg, workdir)
    assert (result.start_step, result.end_step) == (0, 3)

    rows = read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0]["time/seeding"] > 0  # the seeding phase filled each buffer to 2 first
    assert all(rows[0][f"buffer/{t}"] >= 2 for t in ("deduction", "abduction", "induction"))
    for r in rows:
        for t, role in GROUPS:
            assert f"reward/{t}_{role}" in r and np.isfinite(r[f"adv_mean/{t}_{role}"])
        assert np.isfinite(r["loss"]) and r["num_tokens"] > 0
        # rl.old_logprobs=recompute (official): the trainer's pass, its cost and the mismatch
        # with the sampler's log-probs (large here: the canned rows carry log-prob -1, which
        # the recompute replaces), and the update's own forward agrees with the recomputed ones
        assert r["time/old_logprobs"] > 0 and r["logprob/sampler_vs_recomputed_abs"] > 0.1
        assert r["logprob/recomputed_vs_update_abs"] < 1e-5
        assert 0.0 <= r["device_idle_frac"] <= 1.0 and r["time/sample"] > 0
    tasks = read_tasks(workdir)
    # every group got rewards that differ between samples, hence non-zero advantages
    for t, role in GROUPS:
        assert any(r[f"adv_std/{t}_{role}"] > 0.1 for r in rows), (t, role)
    # valid proposals entered the buffers; the solver solved some, failed some
    for t in ("deduction", "abduction", "induction"):
        assert rows[-1][f"buffer/{t}"] > 1
        assert any(0 < r[f"solve_rate/{t}"] < 1 for r in rows)
    assert len(tasks) == 3 * 3 * cfg.selfplay.batch_per_group
    assert any(t["valid"] and t["type"] == "deduction" and "x *" in t["program"] for t in tasks)
    assert any(not t["valid"] and "NameError" in t["error"] for t in tasks)
    # TensorBoard events, the saved config and a restorable checkpoint
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(os.path.join(workdir, "tb")))
    assert json.load(open(os.path.join(workdir, "config.json")))["model"]["preset"] == "tiny"
    html = open(build_report(workdir)).read()
    assert "x * " in html and "<svg" in html
    # every solver rollout is logged (prompt, answer, grade) and browsable in the report
    solves = read_solves(workdir)
    assert len(solves) == 3 * 3 * cfg.selfplay.batch_per_group
    assert {"passed", "failed"} <= {s["outcome"] for s in solves}
    assert all(s["prompt"] and s["type"] in ("deduction", "abduction", "induction") for s in solves)
    assert '<table id="solves">' in html and html.count('<tr class="good" data-type=') > 0

    # a longer run continues from the checkpoint, now with overlap (staleness 1): rollouts
    # of step 5 sample with the parameters from before update 4, which the update donates
    more = load_config("tiny_cpu", ["trainer.steps=5", "sampling.max_new_tokens=128", *MESH_222,
                                    "selfplay.seed_batch_factor=1",
                                    "trainer.staleness=1", "trainer.checkpoint_every=10"])
    again = train(more, workdir)
    assert (again.start_step, again.end_step) == (3, 5)
    rows = read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert np.isfinite(rows[-1]["loss"]) and rows[-1]["buffer/deduction"] > 1
