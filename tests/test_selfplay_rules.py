"""The official rules that need the executor: banned list (8), executor rules (9), grading
with the run's config (12), and the seeding phase (2)."""

import dataclasses
import json

import numpy as np
import pytest

from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax.executor.azr import BAN_LISTS, check_with, grade_deductions, truncate_output

CFG = dataclasses.replace(sp.SelfPlayConfig(), batch_per_group=2, num_references=2,
                          num_rollouts=2, num_inputs=4, timeout_s=2.0).validate()


def ans(body):
    return f"<think>ok</think><answer>{body}</answer>"


def prop(program, inp):
    return ans(f"```python\n{program}\n```\n```input\n{inp}\n```")


@pytest.fixture(scope="module")
def pool():
    from azr_jax.executor import SandboxConfig, SandboxPool
    with SandboxPool(SandboxConfig(workers=1, timeout_s=1.0)) as p:
        yield p


# ---- rule 8: one banned list, official by default ----

@pytest.mark.parametrize("code,official,strict", [
    ("import random\ndef f(x): return x", "banned import: random", "banned import: random"),
    ("from datetime import date\ndef f(x): return x", "banned import", "banned import"),
    ("from collections import time\ndef f(x): return x", "banned import", "banned import"),
    ("import os\ndef f(x): return x", None, "banned import: os"),  # import-only list
    ("def f(x): return eval('1')", None, "banned call: eval"),
    ("def f(x): return input()", "banned text: input(", "banned call: input"),
    ("import math\ndef f(x): return math.sqrt(x)", None, None),
])
def test_ban_lists(code, official, strict):
    for bans, want in ((BAN_LISTS["official"], official), (BAN_LISTS["strict"], strict)):
        got = check_with(code, bans)
        assert (got is None) if want is None else (got is not None and want in got), (got, want)


def test_validation_and_grading_use_the_runs_list(pool):
    """Rules 8 and 12: validation obeys the configured list; induction answers only its
    texts."""
    reqs = sp.proposer_requests("deduction", sp.Buffers.from_config(CFG), 1,
                                np.random.default_rng(0), CFG)
    os_prog = prop("import os\ndef f(x):\n    return len(os.sep) + x", "1")
    assert sp.validate_proposals(pool, reqs, [os_prog], CFG)[0].outcome == sp.PASSED
    strict = dataclasses.replace(CFG, banned="strict")
    assert sp.validate_proposals(pool, reqs, [os_prog], strict)[0].outcome == sp.FAILED
    # an induction proposal runs a buffer program (e.g. a seed file's, taken as given) with
    # no ban check but the list's texts (reward_managers.py gen_code_f: banned_keywords=[])
    inputs = ans("".join(f"```input\n{i}\n```" for i in range(CFG.num_inputs)) + "```message\nm\n```")
    for program, want in (("import random\ndef f(x):\n    return x + 1", sp.PASSED),
                          ("def f(x):\n    return x if 'input(' else 0", sp.FAILED)):
        req = sp.ProposerRequest("induction", (), program=program)
        assert sp.validate_proposals(pool, [req], [inputs], CFG)[0].outcome == want, program
    task = sp.InductionTask("def f(x):\n    return x + 1", ("1", "2"), ("2", "3"), "plus one")
    st = sp.solver_task("induction", task, CFG)
    answer = sp.parse_answer("induction", ans("```python\nimport math\ndef f(x):\n    return x + 1\n```"))
    assert sp.grade_answers(pool, [st], [answer], CFG) == [True]
    # issue 29.8: a solver's program gets no ban check (official eval_input_prediction),
    # except the texts the official executor refuses in any code ("input(")
    for cfg in (dataclasses.replace(CFG, banned_extra=("math",)), strict):
        assert sp.grade_answers(pool, [st], [answer], cfg) == [True]
    rand = sp.parse_answer("induction", ans("```python\nimport random\ndef f(x):\n"
                                            "    return x + 1\n```"))
    assert sp.grade_answers(pool, [st], [rand], CFG) == [True]
    reads = sp.parse_answer("induction", ans("```python\ndef f(x):\n    input\n"
                                             "    return x + 1 if 'input(' else 0\n```"))
    assert sp.grade_answers(pool, [st], [reads], CFG) == [False]


# ---- rule 9: executor rules ----

def test_timeout_default_is_ten_seconds():
    assert sp.SelfPlayConfig().timeout_s == 10.0


def test_deduction_answers_are_values(pool):
    prog = "def f(x):\n    return [x] * 3"
    items = [(prog, "[2, 2, 2]", "[2, 2, 2]"),      # a value
             (prog, "[2] * 3", "[2, 2, 2]"),        # an expression is not a value
             (prog, "f(2)", "[2, 2, 2]"),           # nor a call of the program
             (prog, "[2, 2]", "[2, 2, 2]"),         # wrong
             (prog, "1 / 0", "[2, 2, 2]"),
             (prog, "__import__('os').getpid()", "[2, 2, 2]")]  # never run
    assert grade_deductions(pool, items) == [True, False, False, False, False, False]
    # the official check: eval(gold) == eval(answer), no program names in scope
    assert grade_deductions(pool, items, check="official") == \
        [True, True, False, False, False, False]
    st = sp.solver_task("deduction", sp.Triplet(prog, "2", "[2, 2, 2]"), CFG)
    answer = sp.parse_answer("deduction", ans("```output\n[2] * 3\n```"))
    assert sp.grade_answers(pool, [st], [answer], CFG) == [False]
    official = dataclasses.replace(CFG, answer_check="official")
    assert sp.grade_answers(pool, [st], [answer], official) == [True]


def test_long_outputs_are_cut_and_unsolvable(pool):
    out = "x" * 1000
    cut = truncate_output(repr(out))
    assert len(cut) == 403 and cut[:200] == repr(out)[:200] and cut[200:203] == "..."
    assert truncate_output("a" * 400) == "a" * 400
    reqs = sp.proposer_requests("deduction", sp.Buffers.from_config(CFG), 1,
                                np.random.default_rng(0), CFG)
    (res,) = sp.validate_proposals(pool, reqs, [prop("def f(n):\n    return 'x' * n", "1000")],
                                   CFG)
    assert res.outcome == sp.PASSED and res.task.output == cut  # valid, enters the buffer
    for t, right in (("deduction", f"```output\n{'x' * 1000!r}\n```"), ("abduction", "1000")):
        st = sp.solver_task(t, res.task, CFG)
        assert sp.grade_answers(pool, [st], [sp.parse_answer(t, ans(right))], CFG) == [False]


def test_main_block_is_not_run(pool):
    """Issue 29.8: an `if __name__ == "__main__":` block does not run (python_executor.py
    GenericRuntime: exec(code, {}))."""
    reqs = sp.proposer_requests("deduction", sp.Buffers.from_config(CFG), 2,
                                np.random.default_rng(0), CFG)
    main = "def f(x):\n    return x + 1\nif __name__ == '__main__':\n    raise SystemExit(f(1))"
    res = sp.validate_proposals(pool, reqs, [prop(main, "1"),
                                             prop("def f(x):\n    return __name__", "1")], CFG)
    assert [r.outcome for r in res] == [sp.PASSED, sp.PASSED], [r.reason for r in res]
    assert res[1].task.output == "'builtins'"


def test_raising_programs_and_multi_line_answers_keep_our_rule(pool):
    """Issue 29.8, two deliberate differences (FIDELITY "Known differences"): a program that
    raises (StopIteration: the official accepts it with gold '') or is non-deterministic is
    invalid; an answer written over several lines is read as a value (the official
    executor evaluates only a snippet's last line, so it scores 0 there)."""
    reqs = sp.proposer_requests("deduction", sp.Buffers.from_config(CFG), 2,
                                np.random.default_rng(0), CFG)
    raising = prop("def f(x):\n    return next(iter(x))", "[]")
    uuid = prop("import uuid\ndef f(x):\n    return str(uuid.uuid4())", "1")
    assert [r.outcome for r in sp.validate_proposals(pool, reqs, [raising, uuid], CFG)] == \
        [sp.FAILED, sp.FAILED]
    task = sp.Triplet("def f(a, b):\n    return [a, b]", "1, 2", "[1, 2]")
    for t, answer in (("deduction", "```output\n[1,\n 2]\n```"),
                      ("abduction", "```input\n1,\n2\n\n```")):
        st = sp.solver_task(t, task, CFG)
        assert sp.grade_answers(pool, [st], [sp.parse_answer(t, ans(answer))], CFG) == [True]


# ---- rule 2: the seeding phase ----

def _scripted_proposer(counter):
    def propose(requests):
        out = []
        for req in requests:
            n = next(counter)
            if req.task_type == "induction":
                out.append(ans("".join(f"```input\n{n + i}\n```" for i in range(4))
                               + "```message\nm\n```"))
            else:
                out.append(prop(f"def f(x):\n    return x + {n}", "1") if n % 3 else "junk")
        return out
    return propose


def test_seeding_fills_every_buffer_from_the_identity(pool, capsys):
    cfg = dataclasses.replace(CFG, seed_batch_factor=2)  # 2 x 2 = 4 tasks per buffer
    buffers = sp.Buffers.from_config(cfg)
    seen = []
    propose = _scripted_proposer(iter(range(1000)))

    def spy(requests):
        seen.extend(r.task_type for r in requests)
        if requests[0].task_type != "induction":
            assert all(r.references for r in requests)  # drawn from the seeded pool
        return propose(requests)

    sizes = sp.seed_buffers(pool, buffers, spy, cfg, np.random.default_rng(0), progress=True)
    assert all(v >= 4 for v in sizes.values()), sizes
    assert sizes == buffers.sizes()
    # triplet types first (one shared pool), then induction from the seeded programs
    assert seen.index("induction") > max(i for i, t in enumerate(seen) if t != "induction")
    assert buffers["deduction"].tasks == buffers["abduction"].tasks  # the shared seed pool
    assert all(v == [] for v in buffers.recent.values())
    assert "seeding buffers" in capsys.readouterr().err  # the progress bar
    with pytest.raises(UserError, match="seeding stopped after 2 rounds"):
        sp.seed_buffers(pool, sp.Buffers.from_config(cfg), lambda rs: ["junk"] * len(rs),
                        cfg, np.random.default_rng(0), max_rounds=2, progress=False)


def test_seeding_resumes_from_its_saved_state(pool, tmp_path):
    cfg = dataclasses.replace(CFG, seed_batch_factor=3)  # 6 per buffer
    state = str(tmp_path / "seeding.json")
    calls = []

    def dies_after_one_round(requests):
        calls.append(len(requests))
        if len(calls) > 2:
            raise KeyboardInterrupt  # preempted in round 2
        return _scripted_proposer(iter(range(100, 1000)))(requests)

    with pytest.raises(KeyboardInterrupt):
        sp.seed_buffers(pool, sp.Buffers.from_config(cfg), dies_after_one_round, cfg,
                        np.random.default_rng(0), progress=False, state_path=state)
    saved = json.load(open(state))
    n_saved = len(saved["deduction"]["tasks"])
    assert n_saved > 1  # round 1 was written
    fresh = sp.Buffers.from_config(cfg)
    sizes = sp.seed_buffers(pool, fresh, _scripted_proposer(iter(range(2000, 3000))), cfg,
                            np.random.default_rng(0), progress=False, state_path=state)
    assert all(v >= 6 for v in sizes.values())
    assert fresh["deduction"].tasks[:n_saved] == [sp.Triplet.from_dict(t) for t in
                                                  saved["deduction"]["tasks"]]


# ---- task types are plug-ins ----


def test_every_registered_type_implements_the_protocol():
    """What the pipeline asks each type (registry.TaskType), for every registered one: a
    type that leaves a member to BaseTaskType's NotImplementedError fails here."""
    from azr_jax.selfplay import registry

    row = {"program": "def f(a, b=0):\n    return a", "inputs": ["1", "2", "3"],
           "message": "m"}
    assert set(registry.REGISTRY) >= {"deduction", "abduction", "induction", "completion"}
    assert registry.default_types() == ("deduction", "abduction", "induction")
    for name, tt in registry.REGISTRY.items():
        assert isinstance(tt, registry.TaskType) and tt.name == name
        task = tt.probe_task(row)
        assert tt.accepts(task) and task.program == row["program"]
        assert tt.log_fields(task)["program"] == row["program"]
        assert all(tt.fences_needed(role, 4) >= 1 for role in sp.ROLES)
        assert tt.config_keys() == (f"{name}_propose", f"{name}_solve")
        assert tt.seeds() and all(tt.accepts(s) for s in tt.seeds())
    assert isinstance(registry.read_row({"code": "def f(a): return a", "input": "1"}),
                      sp.Triplet)
    assert isinstance(registry.read_row(row), sp.InductionTask)


def test_an_unknown_task_type_is_refused():
    # a new type is one registered module: tests/test_completion.py runs the real one
    with pytest.raises(UserError, match="unknown task type 'nope'"):
        dataclasses.replace(CFG, task_types=("nope",)).validate()
