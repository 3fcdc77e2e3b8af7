"""The held-out probe (azr_jax/pipeline/probe.py) and the small-model closing lever: tasks
built deterministically from the probe file and kept out of the buffers, accuracy computed
from scripted answers graded by the real sandbox, `</answer>` closed only where it should be."""

import dataclasses
import os

import pytest

from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax.pipeline import probe as probe_lib
from azr_jax.pipeline.answer_stop import close_answer, cut_index, fences_needed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE_FILE = os.path.join(ROOT, "configs", "probe", "probe.jsonl")
SEED_FILE = os.path.join(ROOT, "configs", "seeds", "demo.jsonl")
CFG = dataclasses.replace(sp.SelfPlayConfig(), num_inputs=4, timeout_s=2.0).validate()
TYPES = ("deduction", "abduction", "induction")


@pytest.fixture(scope="module")
def pool():
    from azr_jax.executor import SandboxConfig, SandboxPool
    with SandboxPool(SandboxConfig(workers=1, timeout_s=2.0)) as p:
        yield p


@pytest.fixture(scope="module")
def probe(pool):
    return probe_lib.build_probe(pool, PROBE_FILE, CFG, TYPES)


def _turn(body):
    return f"<think>\n</think>\n<answer>\n{body}\n</answer>"


def _right(st):
    """A correct answer to `st`, as a whole assistant turn."""
    if st.task_type == "deduction":
        return _turn(f"```output\n{st.task.output}\n```")
    if st.task_type == "abduction":
        return _turn(f"```input\n{st.task.input}\n```")
    return _turn(f"```python\n{st.task.program}\n```")


def _wrong(st):
    if st.task_type == "induction":
        return _turn("```python\ndef f(*a):\n    return 'nope'\n```")
    lang = "output" if st.task_type == "deduction" else "input"
    return _turn(f"```{lang}\n'certainly not the answer'\n```")


def test_probe_is_48_fixed_tasks_disjoint_from_the_buffers(pool, probe):
    assert len(probe.tasks) == 48 and probe.types() == list(TYPES)
    assert [sum(st.task_type == t for st in probe.tasks) for t in TYPES] == [16, 16, 16]
    again = probe_lib.build_probe(pool, PROBE_FILE, CFG, TYPES)
    assert again == probe  # built deterministically (gold outputs from the executor)
    ded = [st.task for st in probe.tasks if st.task_type == "deduction"]
    assert all(t.output for t in ded) and ded[0].output == "'pu level'"
    abd = [st.task for st in probe.tasks if st.task_type == "abduction"]
    assert (abd[0].input, abd[0].output) == ("'abc'", "'cba'")  # a row's second input
    # the seed buffers never hold a probe task (programs are shared, inputs are not)
    seeds = sp.validate_seeds(pool, sp.load_seed_file(SEED_FILE), CFG)
    seed_io = {(t.program, t.input) for t in seeds}
    assert not seed_io & {(st.task.program, st.task.input) for st in probe.tasks
                          if isinstance(st.task, sp.Triplet)}
    ind = [st for st in probe.tasks if st.task_type == "induction"]
    assert all(st.heldout and st.visible for st in ind)


def test_probe_accuracy_from_scripted_answers(pool, probe):
    # right on the first k tasks of each type, wrong (or unparsable) on the rest
    right = {"deduction": 4, "abduction": 8, "induction": 2}
    seen = {t: 0 for t in TYPES}

    def answer_fn(tasks):
        out = []
        for st in tasks:
            i = seen[st.task_type]
            seen[st.task_type] += 1
            out.append(_right(st) if i < right[st.task_type] else
                       "no answer at all" if i % 2 else _wrong(st))
        return out

    m = probe_lib.probe_metrics(probe, answer_fn, pool, CFG)
    assert m["probe/seen/deduction_acc"] == 4 / 16
    assert m["probe/seen/abduction_acc"] == 8 / 16
    assert m["probe/seen/induction_acc"] == 2 / 16
    assert m["probe/seen/acc"] == 14 / 48
    assert m["probe/seen/deduction_format_error"] == 6 / 16  # odd indices 5..15
    assert probe_lib.valid_rate({"valid_rate/a": 0.5, "valid_rate/b": 0.0, "x": 9}) == 0.25


def test_bad_probe_file_is_one_clear_error(pool, tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"program": "def f(x):\\n    return x", "inputs": ["1"], "message": "m"}\n')
    with pytest.raises(UserError, match="at least 2 input"):
        probe_lib.build_probe(pool, str(bad), CFG, TYPES)


@pytest.mark.parametrize("turn,closed", [
    ("<answer>\n```output\n42\n```", True),
    ("<think>\n</think>\n<answer>\n```python\ndef f(x):\n    return x\n```\n", True),
    ("<answer>\n```output\n42\n```\n</answer>", False),  # already closed
    ("<answer>\n```output\n42\n", False),  # the fence is still open
    ("<answer>\n```output\n42\n```\nand more", False),  # stopped elsewhere
    ("```output\n42\n```", False),  # no <answer> at all
])
def test_close_answer(turn, closed):
    out = close_answer(turn)
    assert (out != turn) == closed
    if closed:
        assert out.endswith("```\n</answer>") and out.startswith(turn.rstrip())
        parsed = sp.parse_answer("deduction", "<think></think>" + out[out.index("<answer>"):])
        assert not isinstance(parsed, sp.FormatError)


def test_cut_after_the_answers_last_fence():
    decode = "".join  # one character per "token"
    solve_pre = "<think>\n</think>\n<answer>\n```output\n"
    text = "42\n```\nAnd then some prose ```python\nx\n```"
    k = cut_index(decode, list(text), solve_pre, fences_needed("deduction", "solve", 4))
    assert text[:k] == "42\n```"
    prop_pre = "<think>\n</think>\n<answer>\n```python\ndef f("
    text = "x):\n    return x\n```\n```input\n3\n```\nmore ```input\n4\n```"
    k = cut_index(decode, list(text), prop_pre, fences_needed("abduction", "propose", 4))
    assert text[:k].endswith("```input\n3\n```")
    assert cut_index(decode, list("x):\n  return 1\n```\nprose"), prop_pre, 2) is None
    assert fences_needed("induction", "propose", 4) == 5  # 4 inputs + the message
