"""The code-completion task type (selfplay/task_types/completion.py): a fourth type added as
one module plus its grader (executor/completion.py), run through the registry's seams: the
hole and its grading, the round, the answer stop, and a tiny_cpu training step with the
probe, where nothing outside the two modules names it."""

import ast
import dataclasses
import json
import os

import numpy as np
import pytest

from azr_jax import selfplay as sp
from azr_jax.executor import SandboxConfig, SandboxPool
from azr_jax.executor.azr import BAN_LISTS
from azr_jax.executor.completion import EXPRESSION, HOLE, fill, grade_completion, make_hole
from azr_jax.pipeline import answer_stop
from azr_jax.pipeline import rollout as rollout_mod
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline.metrics import read_metrics
from azr_jax.pipeline.tasklog import read_tasks
from azr_jax.pipeline.trainer import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE_FILE = os.path.join(ROOT, "configs", "probe", "probe.jsonl")
LOOP = "def f(n, k):\n    s = 0\n    for i in range(n):\n        s += i * k\n    return s + 1"
CFG = sp.SelfPlayConfig(task_types=("completion",), num_references=1, timeout_s=5.0).validate()


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(workers=1, timeout_s=5.0))
    yield p
    p.close()


def _turn(answer: str) -> str:
    return f"<think>ok</think><answer>{answer}</answer>"


def test_the_hole_is_one_part_of_f_chosen_from_the_program_alone():
    holes = {make_hole(f"def f(x):\n    y = x * {k}\n    return y - {k}") for k in range(12)}
    assert {h.kind for h in holes} >= {EXPRESSION, "Assign", "Return"}  # both kinds occur
    for h in holes:
        assert h.masked.count(HOLE) == 1
        assert fill(h.masked, h.kind, h.hidden) is not None  # the hidden text fits back
    assert make_hole(LOOP) == make_hole(LOOP)  # deterministic
    assert make_hole("def g(x):\n    return x") is None  # no f
    assert make_hole(f"def f(x):\n    {HOLE} = 1\n    return x") is None  # name in use


@pytest.mark.parametrize("kind, answer", [
    (EXPRESSION, "a\n    import os"),            # a second line
    (EXPRESSION, "a)\nimport os\nprint((a"),     # closing the hole's parentheses
    (EXPRESSION, "x = 1"),                       # a statement in an expression's place
    ("Return", "x = a\nreturn x"),               # two statements
    ("Return", "a = 1"),                         # another kind of statement
    ("Return", "return a\nimport os"),
])
def test_an_answer_cannot_escape_its_hole(kind, answer):
    masked = f"def f(a):\n    return {HOLE}" if kind == EXPRESSION else f"def f(a):\n    {HOLE}"
    assert fill(masked, kind, answer) is None


def test_grading_runs_the_completed_f_with_the_run_bans(pool):
    masked = f"def f(a):\n    return {HOLE}"
    items = [(masked, EXPRESSION, "a[::-1]", "'abc'", "'cba'"),              # right
             (masked, EXPRESSION, "''.join(reversed(a))", "'abc'", "'cba'"),  # right too
             (masked, EXPRESSION, "a", "'abc'", "'cba'"),                    # wrong value
             (masked, EXPRESSION, "__import__('random') and a[::-1]", "'abc'", "'cba'"),
             (masked, EXPRESSION, "a[::-1]\nimport os", "'abc'", "'cba'")]    # escapes
    assert grade_completion(pool, items, bans=BAN_LISTS["strict"]) == [
        True, True, False, False, False]
    # the official list: banned modules and the text "input(", in the answer as anywhere
    banned = [(masked, EXPRESSION, "a[::-1] if a else input()", "'abc'", "'cba'")]
    assert grade_completion(pool, banned, bans=BAN_LISTS["official"]) == [False]


def test_the_type_sits_in_the_registry_off_by_default():
    tt = sp.registry.get("completion")
    assert "completion" not in sp.SelfPlayConfig().task_types  # the official has three types
    assert tt.config_keys() == ("completion_propose", "completion_solve")
    assert answer_stop.fences_needed("completion", "propose", 10) == 2  # program + input
    assert answer_stop.fences_needed("completion", "solve", 10) == 1
    assert sp.group_id("completion", "solve") == 7  # after the 6 official groups
    cfg = load_config("tiny_cpu", ["prefix.completion_solve=<think>"])  # a config key
    assert cfg.prefix.completion_solve == "<think>"


def test_a_round_validates_solves_and_grades(pool):
    buffers = sp.Buffers.from_config(CFG)
    assert buffers.sizes() == {"completion": 1}  # the identity seed
    reqs = sp.proposer_requests("completion", buffers, 2, np.random.default_rng(0), CFG)
    texts = [_turn(f"```python\n{LOOP}\n```\n```input\n4, 3\n```"),
             _turn("```python\ndef f(x):\n    pass\n```\n```input\n1\n```")]
    ok, none = sp.validate_proposals(pool, reqs, texts, CFG)
    assert ok.outcome == sp.PASSED and ok.task == sp.Triplet(LOOP, "4, 3", "19")
    assert none.outcome == sp.PASSED  # `pass` is a statement it can hide
    sp.add_valid(buffers, [ok, none])
    st = sp.solver_task("completion", ok.task, CFG)
    hole = make_hole(LOOP)
    assert hole.masked in st.messages[-1]["content"] and "19" in st.messages[-1]["content"]
    assert hole.hidden not in st.messages[-1]["content"].replace(hole.masked, "")
    answers = [sp.parse_answer("completion", _turn(f"```python\n{hole.hidden}\n```")),
               sp.parse_answer("completion", _turn("```python\nreturn 0\n```")),
               sp.parse_answer("completion", "no format")]
    assert isinstance(answers[2], sp.FormatError)
    assert sp.grade_answers(pool, [st] * 3, answers, CFG) == [True, False, False]


# --- a tiny_cpu training step and the probe, with the completion type on ---------------

def _known_holes():
    """The hole of every program the responder can meet: the seed, its proposals, the
    probe's programs (so the greedy probe answers can be right)."""
    programs = [sp.IDENTITY_PROGRAM] + [f"def f(x):\n    return x * {k}" for k in range(5)]
    with open(PROBE_FILE) as f:
        programs += [json.loads(line)["program"] for line in f if line.strip()]
    return {h.masked: h for h in map(make_hole, programs) if h is not None}


def _responder(holes):
    def respond(prompt: str, row: int) -> str | None:
        if "Propose a new completion" in prompt:  # trailing text: the answer stop cuts it
            return (f"ok</think><answer>\n```python\ndef f(x):\n    return x * {row % 5}\n```\n"
                    f"```input\n{row}\n```\nand more text")
        hole = next((h for m, h in holes.items() if m in prompt), None)
        if hole is None:
            return None
        wrong = "None" if hole.kind == EXPRESSION else "return None"
        answer = hole.hidden if row % 2 else wrong  # half right, half wrong
        return f"ok</think><answer>\n```python\n{answer}\n```\n</answer>"
    return respond


def test_a_tiny_cpu_training_step_and_probe_with_completion(tmp_path, monkeypatch):
    from canned_sampling import canned_sample

    monkeypatch.setattr(rollout_mod, "sample", canned_sample(rollout_mod.sample,
                                                             _responder(_known_holes())))
    cfg = load_config("tiny_cpu", [
        "trainer.steps=1", "sampling.max_new_tokens=96", "sampling.max_prompt_len=320",
        "selfplay.task_types=completion",  # tiny.json holds the plug-in's templates too
        "selfplay.close_answer=True", "probe.every=1", f"probe.file={PROBE_FILE}"])
    workdir = str(tmp_path / "run")
    assert train(cfg, workdir).end_step == 1
    rows = read_metrics(workdir)
    probe_rows = [r for r in rows if "probe/seen/completion_acc" in r]
    assert probe_rows and all("probe/seen/deduction_acc" not in r for r in rows)
    assert 0 < probe_rows[-1]["probe/seen/completion_acc"] < 1  # the right half and the wrong
    step = rows[-1]
    assert np.isfinite(step["loss"]) and step["num_tokens"] > 0
    assert 0 < step["solve_rate/completion"] < 1
    assert f"reward/completion_propose" in step and "adv_mean/completion_solve" in step
    tasks = read_tasks(workdir)
    valid = [t for t in tasks if t["type"] == "completion" and t["valid"]]
    assert valid and all(t["masked"].count(HOLE) == 1 for t in valid)
    # the canned proposals end in prose: only the answer stop made them formatted
    assert any(t["formatted"] for t in valid)
    assert all(ast.parse(t["program"]) for t in valid)
