"""Solver prefixes may restate what the prompt shows ({input} for deduction, {output} for
abduction) and never the value the solver must find."""

import pytest

from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax.pipeline.setup import check_config
from azr_jax.pipeline.config import load_config
from azr_jax.selfplay.prompts import check_prefixes, solve_prefix

TASK = sp.Triplet(program="def f(x):\n    return {'k': x}", input="4", output="{'k': 4}")


def test_placeholders_take_the_shown_value_and_code_braces_stay():
    assert solve_prefix("print(f({input}))  # Output: ", "deduction", TASK) == \
        "print(f(4))  # Output: "
    assert solve_prefix("# Output: {output}\n# Input: ", "abduction", TASK) == \
        "# Output: {'k': 4}\n# Input: "
    # a placeholder the type does not show stays literal (the config check refuses it first)
    assert solve_prefix("d = {x: 1}  {output}", "deduction", TASK) == "d = {x: 1}  {output}"
    assert solve_prefix("def f(", "induction", TASK) == "def f("


@pytest.mark.parametrize("key, text", [
    ("deduction_solve", "# Output: {output}"),   # the gold output is the deduction answer
    ("abduction_solve", "f({input})"),           # the gold input would give the answer away
    ("induction_solve", "{input}"),
    ("deduction_propose", "{input}"),            # proposer prefixes take no placeholders
])
def test_a_prefix_naming_the_answer_is_refused(key, text):
    with pytest.raises(UserError, match=f"prefix.{key}"):
        check_prefixes({key: text})


def test_the_allowed_placeholders_pass():
    check_prefixes({"deduction_solve": "print(f({input}))",
                    "abduction_solve": "# Output: {output}", "induction_solve": "def f("})


def test_a_run_naming_the_answer_stops_before_it_starts():
    # setup.check_config (preflight, before the workdir is touched) runs the check
    cfg = load_config("tiny_cpu", ["--config.prefix.deduction_solve=x {output}"])
    with pytest.raises(UserError, match="prefix.deduction_solve"):
        check_config(cfg)
