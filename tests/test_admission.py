"""Admission gates (selfplay/admission.py, selfplay.admission): the registry and its config
check, the gate's verdicts, and one scripted training step on tiny_cpu (real sandbox, rewards,
buffers, metrics.jsonl) under "novel" and under "official"."""

import dataclasses
import html
import json
import os

import pytest

from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax.pipeline import rollout as rollout_mod
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline.metrics import read_metrics
from azr_jax.selfplay import admission, diversity
from canned_sampling import scripted_sample
from test_official_step import kind_responder


def test_unknown_gate_is_a_user_error_naming_the_known_ones():
    assert sp.SelfPlayConfig().admission == "official"
    with pytest.raises(UserError, match="admission='copycat'.*official, novel"):
        sp.SelfPlayConfig.from_dict({"admission": "copycat"})
    with pytest.raises(UserError, match="known: official, novel"):
        admission.get("copycat")


def test_a_workdir_from_before_the_gate_resumes_as_official():
    from azr_jax.pipeline.config import incompatible_keys

    old = load_config("tiny_cpu")
    del old.selfplay["admission"]
    assert incompatible_keys(old, load_config("tiny_cpu")) == []
    novel = load_config("tiny_cpu", ["selfplay.admission=novel"])
    assert incompatible_keys(old, novel) == [("selfplay.admission", "official", "novel")]


def _valid(task_type, program, inp="1", refs=()):
    task = sp.Triplet(program, inp, inp)
    req = sp.ProposerRequest(task_type, (), references=tuple(refs))
    return sp.ProposalResult(req, sp.Proposal(task_type, program=program), sp.PASSED, task=task)


def test_novel_refuses_copies_of_seeds_references_buffer_and_earlier_admissions():
    bufs = sp.Buffers.from_config(sp.SelfPlayConfig())
    index = diversity.CopyIndex()
    index.sync(bufs)
    bufs["deduction"].add(sp.Triplet("def f(a):\n    return a * 3", "1", "3"))
    index.sync(bufs)
    ref = sp.Triplet("def f(n):\n    return n % 7", "30", "2")
    new = "def f(x):\n    return x - 3"
    results = [_valid("deduction", "def f(b):  return b"),                 # seed
               _valid("deduction", "def f(m):\n    return m%7", refs=[ref]),   # reference
               _valid("deduction", "def f(q):\n    return q*3"),           # buffered
               _valid("deduction", new),                                   # admitted
               _valid("deduction", new.replace("x", "y"), inp="2"),        # its copy
               _valid("abduction", new),                                   # another buffer
               dataclasses.replace(_valid("deduction", new), outcome=sp.FAILED)]
    out = diversity.admit(results, "novel", index)
    assert [r.outcome for r in out] == [sp.FAILED] * 3 + [sp.PASSED, sp.FAILED, sp.PASSED,
                                                          sp.FAILED]
    assert [r.reason for r in out[:5]] == ["copy", "copy", "copy", "", "copy"]
    assert out[0].task == results[0].task  # kept for the task log
    assert diversity.admit(results, "official", index) == results
    # the refused proposal's reward is an invalid one's under either reward rule
    for rule, want in (("official", -1.0), ("paper_text", -0.5)):
        cfg = sp.SelfPlayConfig(reward_rule=rule)
        assert sp.proposer_composite(out[0].reward_outcome, None, cfg) == want


def test_a_registered_gate_is_selectable():
    @admission.register("far")
    def far(proposed, known):
        return diversity.nearest_distance(proposed.program, proposed.neighbours) >= 0.5

    try:
        assert sp.SelfPlayConfig(admission="far").validate().admission == "far"
        index = diversity.CopyIndex()
        index.sync(sp.Buffers.from_config(sp.SelfPlayConfig()))
        near = _valid("deduction", "def f(a):\n    return a + 1")
        far_away = _valid("deduction", "def f(a, b):\n    return sorted(a)[b:] * 2")
        out = diversity.admit([near, far_away], "far", index)
        assert [r.outcome for r in out] == [sp.FAILED, sp.PASSED]
    finally:
        del admission.GATES["far"]


# ---- one scripted training step -------------------------------------------------------

IDENTITY_INPUTS = sp.IDENTITY_INDUCTION.inputs  # the induction seed's 6 inputs


def _fenced(tag, *bodies):
    return "".join(f"```{tag}\n{b}\n```\n" for b in bodies)


# Per kind: (a copy of a seed, a new task); the seed is def f(a): return a.
PROPOSALS = {
    "propose_deduction": [_fenced("python", "def f( b ):\n    return (b)") + _fenced("input", 5),
                          _fenced("python", "def f(x):\n    return x * 2") + _fenced("input", 3)],
    "propose_abduction": [_fenced("python", "def f(c):\n  return c") + _fenced("input", "'q'"),
                          _fenced("python", "def f(x):\n    return x + 1") + _fenced("input", 1)],
    # induction: the identity (the only buffer program) on the seed's inputs, reordered
    "propose_induction": [_fenced("input", *reversed(IDENTITY_INPUTS)) + _fenced("message", "m"),
                          _fenced("input", *range(1, 7)) + _fenced("message", "m")],
}
# Learnability (2 rollouts per admitted task): one right, one wrong -> s = 1/2 -> +0.5.
LEARN = {
    "learn_deduction": lambda prompt, k: ["```output\n6\n```", "```output\n7\n```"][k % 2]
    if "x * 2" in prompt else ["```output\n5\n```", "```output\n7\n```"][k % 2],
    "learn_abduction": lambda prompt, k: ["```input\n1\n```", "```input\n5\n```"][k % 2]
    if "x + 1" in prompt else ["```input\n'q'\n```", "```input\n'z'\n```"][k % 2],
    "learn_induction": lambda prompt, k: ["```python\ndef f(a):\n    return a\n```",
                                          "```python\ndef f(a):\n    return 0\n```"][k % 2],
}
SOLVE = {"solve_deduction": "```output\n'Hello world'\n```",
         "solve_abduction": "```input\n'Hello world'\n```",
         "solve_induction": "```python\ndef f(a):\n    return a\n```"}


def _respond(kind, prompt, k):
    if kind in PROPOSALS:
        body = PROPOSALS[kind][k]
    elif kind in LEARN:
        body = LEARN[kind](prompt, k)
    else:
        body = SOLVE[kind]
    return f"ok</think><answer>{body}</answer>"


def _run(tmp_path, monkeypatch, gate, *overrides):
    respond, lengths_by_kind = kind_responder(_respond)
    monkeypatch.setattr(rollout_mod, "sample", scripted_sample(respond))
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "selfplay.num_inputs=6", "sampling.max_new_tokens=256",
                                   f"selfplay.admission={gate}", *overrides])
    from azr_jax.pipeline.trainer import train
    seen = {}

    def rollout_fn(ctx, step, params):
        seen["ro"], seen["buffers"] = rollout_mod.run_rollout(ctx, step, params), ctx.buffers
        return seen["ro"]

    workdir = str(tmp_path / gate)
    train(cfg, workdir, rollout_fn=rollout_fn)
    rows = {(r["type"], i % 2): r for i, r in enumerate(seen["ro"].task_rows)}
    return rows, seen["buffers"], lengths_by_kind, read_metrics(workdir), workdir


TYPES = ("deduction", "abduction", "induction")


def test_novel_gate_in_a_training_step(tmp_path, monkeypatch):
    rows, buffers, lengths, metrics, workdir = _run(tmp_path, monkeypatch, "novel")
    invalid = sp.proposer_composite(sp.FAILED, None, sp.SelfPlayConfig())
    for t in TYPES:
        copy, new = rows[(t, 0)], rows[(t, 1)]
        assert (copy["outcome"], copy["error"], copy["valid"]) == ("failed", "copy", False), t
        assert copy["reward"] == invalid == -1.0, t
        assert (new["outcome"], new["valid"], new["reward"]) == ("passed", True, 0.5), t
        # the buffer: the seed and the new task; the copy stayed out
        assert buffers[t].tasks[0] == sp.registry.get(t).seeds()[0] and len(buffers[t]) == 2
        assert len(lengths[f"learn_{t}"]) == 2  # only the admitted task was rolled out
    assert "x * 2" in buffers["deduction"].tasks[1].program
    assert "x + 1" in buffers["abduction"].tasks[1].program
    assert buffers["induction"].tasks[1].inputs == tuple(str(i) for i in range(1, 7))
    (row,) = [r for r in metrics if r["step"] == 1]
    for t in TYPES:  # measured on the validated proposals, before the gate
        assert row[f"diversity/copy_rate/{t}"] == 0.5
        assert row[f"diversity/novel_valid_rate/{t}"] == 0.5
        assert row[f"diversity/distinct/{t}"] == 1.0
        assert row[f"valid_rate/{t}"] == 1.0
        assert row[f"diversity/answer_entropy/{t}"] == pytest.approx(0.6931, abs=1e-4)
    with open(os.path.join(workdir, "tasks.jsonl")) as f:
        assert sum(json.loads(line)["error"] == "copy" for line in f) == 3
    # one report chart per diversity metric
    from azr_jax.pipeline.report import PLOTS, build_report
    charts = [title for title, keys in PLOTS if str(keys).startswith("diversity/")]
    assert len(charts) == 6
    with open(build_report(workdir)) as f:
        page = f.read()
    assert all(html.escape(title) in page for title in charts)


def test_official_gate_admits_both(tmp_path, monkeypatch):
    rows, buffers, lengths, metrics, _ = _run(tmp_path, monkeypatch, "official")
    for t in TYPES:
        for k in (0, 1):
            assert (rows[(t, k)]["outcome"], rows[(t, k)]["reward"]) == ("passed", 0.5), (t, k)
        assert len(buffers[t]) == 3 and len(lengths[f"learn_{t}"]) == 4
    (row,) = [r for r in metrics if r["step"] == 1]
    assert row["diversity/copy_rate/deduction"] == 0.5
    # the copy is 0 from the identity; `return x * 2` is 2 tokens of 12 from it
    # (def v0 ( v1 ) : INDENT return v1 * 2 DEDENT)
    assert row["diversity/nearest_distance/deduction"] == pytest.approx((0 + 2 / 12) / 2)


def test_novelty_bonus_adds_distance_to_an_admitted_proposals_reward(tmp_path, monkeypatch):
    # official gate, bonus 0.3: the copy (distance 0) keeps 0.5, `return x * 2` and
    # `return x + 1` (2 tokens of 12 from the identity) gain 0.3 x 2/12; induction's proposer
    # is given its program, so no bonus there
    rows, _, _, metrics, _ = _run(tmp_path, monkeypatch, "official", "selfplay.novelty_bonus=0.3")
    for t in TYPES:
        assert rows[(t, 0)]["reward"] == 0.5, t
        new = 0.5 + (0.3 * 2 / 12 if t != "induction" else 0.0)
        assert rows[(t, 1)]["reward"] == pytest.approx(new, abs=1e-4), t
    (row,) = [r for r in metrics if r["step"] == 1]
    assert row["reward/deduction_propose"] == pytest.approx((0.5 + 0.5 + 0.3 * 2 / 12) / 2,
                                                            abs=1e-4)
