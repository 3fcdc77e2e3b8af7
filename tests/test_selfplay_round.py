"""One self-play round without a model: scripted proposer and solver responses go through
parsing -> executor validation (the real sandbox) -> buffers -> grading -> rewards, under
the official rules, and every number is checked."""

import dataclasses

import numpy as np
import pytest

from azr_jax import selfplay as sp
from azr_jax.errors import UserError

CFG = dataclasses.replace(sp.SelfPlayConfig(), batch_per_group=3, num_references=2,
                          num_rollouts=2, num_inputs=4, timeout_s=2.0).validate()
SORT = "def f(xs):\n    return sorted(xs)[::-1]"
MUL = "def f(a, b):\n    return a * b + 1"


def ans(body):
    return f"<think>Let me work it out.</think>\n<answer>{body}</answer>"


def prop(program, inp):
    return ans(f"\n```python\n{program}\n```\n```input\n{inp}\n```\n")


def inputs(*xs, message="Look closely at what comes back."):
    return ans("".join(f"```input\n{x}\n```\n" for x in xs) + f"```message\n{message}\n```")


@pytest.fixture(scope="module")
def pool():
    from azr_jax.executor import SandboxConfig, SandboxPool
    with SandboxPool(SandboxConfig(workers=1, timeout_s=1.0)) as p:
        yield p


def test_one_round(pool):
    rng = np.random.default_rng(0)
    buffers = sp.Buffers.from_config(CFG)
    buffers["deduction"].add(sp.Triplet("def f(n):\n    return n % 7", "30", "2"))
    assert buffers.sizes() == {"deduction": 2, "abduction": 1, "induction": 1}

    # ---- propose ----
    reqs = {t: sp.proposer_requests(t, buffers, n, rng, CFG)
            for t, n in (("deduction", 5), ("abduction", 2), ("induction", 3))}
    assert all(len(r.references) == 2 for r in reqs["deduction"])  # K=2 of 2
    assert all(r.program in buffers.programs() for r in reqs["induction"])
    ind_prog = "def f(n):\n    return n % 7"
    reqs["induction"] = [dataclasses.replace(r, program=ind_prog) for r in reqs["induction"]]
    texts = {
        "deduction": [prop(SORT, "[3, 1, 2]"),                       # valid
                      "I would rather not write a program.",          # format error
                      prop("import random\ndef f(x):\n    return random.random()", "1"),  # banned
                      prop("def f(x):\n    return 1 // x", "0"),     # raises
                      prop("import os\ndef f(x):\n    return len(os.sep) + x", "1")],  # official: ok
        "abduction": [prop(MUL, "3, 4"),                              # valid
                      "<answer>" + prop(MUL, "1, 1")],                # no think first: valid,
                                                                      # but a format failure
        "induction": [inputs("5", "12", "40", "5"),                   # valid, duplicate kept
                      inputs("7", "8", "9"),                          # 3 of 4 inputs: format
                      inputs("1", "2", "'a'", "3")],                  # 'a' % 7 fails: invalid
    }
    results = {t: sp.validate_proposals(pool, reqs[t], texts[t], CFG) for t in reqs}
    outcomes = {t: [r.outcome for r in results[t]] for t in results}
    assert outcomes == {
        "deduction": [sp.PASSED, sp.FORMAT_ERROR, sp.FAILED, sp.FAILED, sp.PASSED],
        "abduction": [sp.PASSED, sp.PASSED],
        "induction": [sp.PASSED, sp.FORMAT_ERROR, sp.FAILED],
    }, {t: [r.reason for r in rs] for t, rs in results.items()}
    # issue 29.2: the format-broken proposal is validated and kept; only its reward pays
    assert [r.formatted for r in results["abduction"]] == [True, False]
    assert results["abduction"][1].task == sp.Triplet(MUL, "1, 1", "2")
    reward_outcomes = {t: [r.reward_outcome for r in results[t]] for t in results}
    assert reward_outcomes["abduction"] == [sp.PASSED, sp.FORMAT_ERROR]
    assert results["deduction"][0].task == sp.Triplet(SORT, "[3, 1, 2]", "[3, 2, 1]")
    assert results["abduction"][0].task == sp.Triplet(MUL, "3, 4", "13")
    ind_task = results["induction"][0].task
    assert ind_task.inputs == ("5", "12", "40", "5")  # exactly N, duplicates allowed
    assert ind_task.program == ind_prog
    assert "random" in results["deduction"][2].reason

    # ---- learnability: n=2 scripted rollouts per valid task ----
    def solve_all(t, task, answers):
        st = sp.solver_task(t, task, CFG)
        parsed = [sp.parse_answer(t, a) for a in answers]
        return sp.grade_answers(pool, [st] * len(parsed), parsed, CFG)

    rollouts = {
        "deduction": [solve_all("deduction", results["deduction"][0].task,
                                [ans("[3, 2, 1]"), ans("[1, 2, 3]")]), [], [], [],
                      solve_all("deduction", results["deduction"][4].task,
                                [ans("2"), ans("```output\n1 + 1\n```")])],  # not a value: wrong
        "abduction": [solve_all("abduction", results["abduction"][0].task,
                                [ans("2, 6"), ans("```input\n4, 3\n```")]), []],
        "induction": [solve_all("induction", ind_task,
                                [ans(f"```python\n{ind_prog}\n```"),
                                 ans("```python\ndef f(x):\n    return None\n```")]), [], []],
    }
    assert rollouts["deduction"][0] == [True, False]
    assert rollouts["deduction"][4] == [True, False]  # selfplay.answer_check="values"
    assert rollouts["abduction"][0] == [True, True]   # any input giving 13 counts
    assert rollouts["induction"][0] == [True, False]
    prop_rewards = {t: sp.proposer_rewards(reward_outcomes[t], rollouts[t], CFG)
                    for t in results}
    # official: invalid or unparsable -1; learnability 0 (always solved) -0.5; else 1 - s
    assert prop_rewards == {"deduction": [0.5, -1.0, -1.0, -1.0, 0.5],
                            "abduction": [-0.5, -1.0],
                            "induction": [0.5, -1.0, -1.0]}

    # ---- solver batches: last round's new tasks first, then the buffer (max_new) ----
    for t in ("deduction", "abduction", "induction"):
        before = sp.fill_tasks(t, buffers, CFG.batch_per_group, rng)
        assert all(task in buffers[t] for task in before)  # nothing new yet: all from buffer
    sizes = buffers.sizes()
    assert sum(sp.add_valid(buffers, results[t]) for t in results) == 5  # format aside
    assert sp.add_valid(buffers, results["deduction"]) == 2  # duplicates are kept
    assert buffers.sizes()["deduction"] == sizes["deduction"] + 4
    solver_tasks, answers = [], []
    for t in ("deduction", "abduction", "induction"):
        tasks = sp.fill_tasks(t, buffers, CFG.batch_per_group, rng)
        new = [r.task for r in results[t] if r.outcome == sp.PASSED]
        assert len(tasks) == 3 and tasks[:len(new)] == new[:3]
        for j, task in enumerate(tasks):
            st = sp.solver_task(t, task, CFG)
            solver_tasks.append(st)
            right = {"deduction": lambda: f"```output\n{task.output}\n```",
                     "abduction": lambda: f"```input\n{task.input}\n```",
                     "induction": lambda: f"```python\n{task.program}\n```"}[t]()
            wrong = {"deduction": "'nope'", "abduction": "'nope'",
                     "induction": "```python\ndef f(x):\n    return 'nope'\n```"}[t]
            script = [ans(right), ans(wrong), "<answer>no think</answer>"]
            answers.append(sp.parse_answer(t, script[j]))
    correct = sp.grade_answers(pool, solver_tasks, answers, CFG)
    assert correct == [True, False, False] * 3
    outcomes_s = sp.answer_outcomes(answers, correct)
    assert sp.solver_rewards(outcomes_s, CFG) == [1.0, -0.5, -1.0] * 3


def test_bad_program_is_failed_and_gets_minus_one(pool):
    buffers = sp.Buffers.from_config(CFG)
    reqs = sp.proposer_requests("abduction", buffers, 3, np.random.default_rng(1), CFG)
    res = sp.validate_proposals(pool, reqs, [
        prop("def f(x):\n    return x +", "1"),                           # syntax error
        prop("def f(x):\n    while True:\n        pass", "1"),            # timeout
        prop("def f(x):\n    return input(x)", "1"),                      # input( is banned
    ], CFG)
    assert [r.outcome for r in res] == [sp.FAILED] * 3
    assert "input(" in res[2].reason
    assert [sp.proposer_composite(r.outcome, None, CFG) for r in res] == [-1.0] * 3
    paper = dataclasses.replace(CFG, reward_rule="paper_text")
    assert [sp.proposer_composite(r.outcome, None, paper) for r in res] == [-0.5] * 3


def test_seed_file_rows_without_outputs_run_in_the_executor(pool, tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"snippet": "def f(x):\\n    return x * 3", "input": "2"}\n'
                    '{"code": "def f(s):\\n    return s.upper()", "input": "\'ab\'", '
                    '"output": "\'AB\'"}\n'
                    '{"snippet": "def f(a):\\n    return a + 1", "inputs": ["1", "2"], '
                    '"message": "add one"}\n')
    cfg = dataclasses.replace(CFG, seed_file=str(path))
    bufs = sp.Buffers.from_config(cfg, pool)
    assert bufs["deduction"].tasks[1:] == [sp.Triplet("def f(x):\n    return x * 3", "2", "6"),
                                           sp.Triplet("def f(s):\n    return s.upper()", "'ab'", "'AB'")]
    assert bufs["induction"].tasks[1] == sp.InductionTask("def f(a):\n    return a + 1",
                                                          ("1", "2"), ("2", "3"), "add one")
    path.write_text('{"program": "import time\\ndef f(x):\\n    return x", "input": "2"}\n')
    with pytest.raises(UserError, match="banned import: time"):
        sp.Buffers.from_config(cfg, pool)
    # a row with its outputs is taken as given, as the official loads its seed files
    path.write_text('{"program": "def f(x):\\n    return x * 3", "input": "2", "output": "7"}\n')
    assert sp.Buffers.from_config(cfg, pool)["deduction"].tasks[1].output == "7"


def test_too_long_prompt_is_redrawn_never_cut():
    """Rule 11: a proposer prompt over the limit is drawn again with other references."""
    buffers = sp.Buffers.from_config(CFG)
    long_prog = "def f(x):\n    return x" + " + 0" * 500
    buffers["deduction"].extend([sp.Triplet(long_prog, "1", "1")] * 3)
    fits = lambda msgs: long_prog not in msgs[-1]["content"]  # noqa: E731
    reqs = sp.proposer_requests("deduction", buffers, 5, np.random.default_rng(0),
                                dataclasses.replace(CFG, num_references=1), fits=fits)
    assert all(r.references == (sp.IDENTITY_TRIPLET,) for r in reqs)
    with pytest.raises(UserError, match="no deduction proposer prompt fit"):
        sp.proposer_requests("deduction", buffers, 1, np.random.default_rng(0), CFG,
                             fits=lambda msgs: False)
    # solver batches skip tasks whose prompt does not fit, drawing others
    tasks = sp.fill_tasks("deduction", buffers, 4, np.random.default_rng(0),
                          fits=lambda task: task.program != long_prog)
    assert tasks == [sp.IDENTITY_TRIPLET] * 4
