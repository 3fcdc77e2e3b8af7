"""Answers that try to score without being right (issue: rewards that cannot be gamed).

Each hack is tried against the grading functions the trainer calls and against a whole
training step with scripted responses. With the default ``selfplay.answer_check="values"``
every one is wrong; with ``"official"`` the official checks' holes stay open (exact
reproduction), which also shows each test can fail.
"""

import pytest

from azr_jax.executor import SandboxConfig, SandboxPool
from azr_jax.executor.answers import NotAValue, canonical_call_args, parse_value, values_equal
from azr_jax.executor.azr import grade_abduction, grade_deductions


def is_value(text: str) -> bool:
    try:
        parse_value(text)
        return True
    except NotAValue:
        return False

DOUBLE = "def f(x):\n    return [x] * 3"
TIMES2 = "def f(x):\n    return x * 2"
ALWAYS_EQUAL = "type('A', (), {'__eq__': lambda s, o: True})()"

# deduction answers for DOUBLE on input 2 (gold [2, 2, 2]) that are not the value
DEDUCTION_HACKS = [
    "f(2)",                                   # the call the prompt shows
    "sorted([2, 2, 2])",                      # a builtin computing it
    "[2] * 3",                                # an expression, not a value
    "[2, 2] + [2]",
    ALWAYS_EQUAL,                             # equal to anything
    "__import__('builtins').list((2, 2, 2))",
    "(lambda: [2, 2, 2])()",
    "[x for x in (2, 2, 2)]",
    "list((2, 2, 2))",
    "[2, 2, 2] if True else 0",
    "(y := [2, 2, 2])",
]
# abduction answers for TIMES2 with gold 10 that are not an input giving 10
ABDUCTION_HACKS = [
    "0) if 0 else (10",                       # closes the call
    "0) or (10",
    "1) + 8 if 1 else f(0",
    "5 * 1",                                  # an expression, not a value
    "*[5]",
    "**{'x': 5}",
    "x=5 if True else 0",
    "(lambda: 5)()",
    "int('5')",
    "5); import os; (5",
    "5)\n#",
]


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(SandboxConfig(workers=1, timeout_s=5.0)) as p:
        yield p


def test_values_parse_and_compare():
    assert parse_value("{'a': (1, 2.0), 3: {4}}") == {"a": (1, 2.0), 3: {4}}
    for text in ("set()", "frozenset({1, 2})", "float('nan')", "float('-inf')", "-3",
                 "(1+2j)", "-1-2j", "range(0, 3)", "b'x'", "bytearray(b'ab')", "Ellipsis",
                 "None", "True", "[[], {}, ()]", "'a\\nb'"):
        assert is_value(text), text
    for text in DEDUCTION_HACKS + ["x", "1 + 1", "{[1]: 2}", "float('1.5')", "a.b",
                                   "[" * 100 + "]" * 100, "1" * 200_000, "f'{1}'"]:
        assert not is_value(text), text
    assert values_equal("[1, 2]", "[1,2]") and values_equal("{'b', 'a'}", "{'a', 'b'}")
    assert values_equal("1", "1.0") and values_equal("True", "1")  # Python's ==, as eval's
    assert not values_equal("[1, 2]", "[2, 1]")
    assert not values_equal("float('nan')", "float('nan')")     # nan != nan, as in eval's
    assert not values_equal("'x' * 3", "'xxx'")


def test_call_args_are_values_of_one_call():
    assert canonical_call_args("1, 2") == "1, 2"
    assert canonical_call_args("[1, 2], k={'a': 1}") == "[1, 2], k={'a': 1}"
    assert canonical_call_args("'a' # )") == "'a'"              # rebuilt: no comment runs
    for hack in ABDUCTION_HACKS:
        with pytest.raises(NotAValue):
            canonical_call_args(hack)


def test_deduction_hacks_are_wrong(pool):
    items = [(DOUBLE, "[2, 2, 2]", "[2, 2, 2]"), (DOUBLE, "[2,2,2]", "[2, 2, 2]")]
    items += [(DOUBLE, hack, "[2, 2, 2]") for hack in DEDUCTION_HACKS]
    assert grade_deductions(pool, items) == [True, True] + [False] * len(DEDUCTION_HACKS)
    assert grade_deductions(pool, items, check="values") == grade_deductions(pool, items)


def test_official_deduction_is_eval_without_the_program(pool):
    # eval(gold) == eval(answer), builtins only, no program names in scope (its holes kept)
    items = [(DOUBLE, "[2, 2, 2]", "[2, 2, 2]"), (DOUBLE, "f(2)", "[2, 2, 2]"),
             (DOUBLE, "[2] * 3", "[2, 2, 2]"), (DOUBLE, "sorted([2, 2, 2])", "[2, 2, 2]"),
             (DOUBLE, ALWAYS_EQUAL, "[2, 2, 2]"), (DOUBLE, "[2, 2]", "[2, 2, 2]"),
             (DOUBLE, "1 / 0", "[2, 2, 2]"),
             ("X = 7\ndef f(x):\n    return X", "X", "7")]  # program names never in scope
    assert grade_deductions(pool, items, check="official") == \
        [True, False, True, True, True, False, False, False]


def test_abduction_hacks_are_wrong(pool):
    items = [(TIMES2, "5", "10"), (TIMES2, "x=5", "10"), (TIMES2, "4", "10"),
             ("def f(a, b):\n    return a + b", "2, 3", "5")]
    items += [(TIMES2, hack, "10") for hack in ABDUCTION_HACKS]
    assert grade_abduction(pool, items) == [True, True, False, True] + \
        [False] * len(ABDUCTION_HACKS)


def test_official_abduction_pastes_the_answer(pool):
    # the official template runs f(<answer text>): closing the call scores there
    items = [(TIMES2, "5", "10"), (TIMES2, "0) if 0 else (10", "10"), (TIMES2, "5 * 1", "10")]
    assert grade_abduction(pool, items, check="official") == [True, True, True]


def test_bad_check_name(pool):
    with pytest.raises(ValueError, match="values"):
        grade_deductions(pool, [(DOUBLE, "1", "1")], check="lenient")


# ---- a whole training step: the hack answers get the solver's failure reward ----

# every prompt gets this turn (the R1 prompt opened it with <think>): proposals have no
# program (unparsable), deduction solvers read the last ```output, abduction the last
# ```input
HACK_TURNS = [
    "ok</think><answer>```output\nf('Hello world')\n```\n"
    "```input\n0) if 0 else ('Hello world'\n```</answer>",
    f"ok</think><answer>```output\n{ALWAYS_EQUAL}\n```\n"
    "```input\n'Hello world') or f(1\n```</answer>",
]


# official: f('Hello world') fails (no program in scope), the always-equal object passes;
# both abduction hacks pass
@pytest.mark.parametrize("answer_check,deduction,abduction",
                         [("values", -0.5, -0.5), ("official", 0.25, 1.0)])
def test_training_step_gives_hacks_the_failure_reward(tmp_path, monkeypatch, answer_check,
                                                      deduction, abduction):
    from canned_sampling import scripted_sample, train_capturing

    from azr_jax.pipeline import rollout as rollout_mod
    from azr_jax.pipeline.config import load_config

    monkeypatch.setattr(rollout_mod, "sample",
                        scripted_sample(lambda prompt, n, row: HACK_TURNS[row % 2]))
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "sampling.max_new_tokens=160",
                                   f"selfplay.answer_check={answer_check}"])
    _, captured = train_capturing(cfg, str(tmp_path / "run"))
    m = captured[0].metrics
    # the solver batch is the identity seed (def f(a): return a on 'Hello world') twice
    assert m["reward/deduction_solve"] == deduction
    assert m["reward/abduction_solve"] == abduction
