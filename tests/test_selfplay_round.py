"""One self-play round without a model: scripted proposer and solver responses go through
parsing -> executor validation (the real sandbox) -> buffers -> grading -> rewards -> TRR++
advantages, and every number is checked."""

import dataclasses

import numpy as np
import pytest

from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax.rl import advantages

CFG = dataclasses.replace(sp.SelfPlayConfig(), batch_per_group=3, num_references=2,
                          num_rollouts=2, num_inputs=4, timeout_s=2.0).validate()
SORT = "def f(xs):\n    return sorted(xs)[::-1]"
MUL = "def f(a, b):\n    return a * b + 1"


def ans(body):
    return f"<think>Let me work it out.</think>\n<answer>{body}</answer>"


def prop(program, inp):
    return ans(f"\n```python\n{program}\n```\n```input\n{inp}\n```\n")


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
            for t, n in (("deduction", 4), ("abduction", 2), ("induction", 2))}
    assert all(len(r.references) == 2 for r in reqs["deduction"])  # K=2 distinct of 2
    ind_prog = reqs["induction"][0].program
    assert ind_prog in buffers.programs()
    texts = {
        "deduction": [prop(SORT, "[3, 1, 2]"),                       # valid
                      "I would rather not write a program.",          # format error
                      prop("import random\ndef f(x):\n    return random.random()", "1"),  # banned
                      prop("def f(x):\n    return 1 // x", "0")],     # raises
        "abduction": [prop(MUL, "3, 4"),                              # valid
                      ans("1") + ans("2")],                           # two answers: format
        "induction": [ans("".join(f"```input\n{i}\n```\n" for i in ("5", "12", "40", "5"))
                          + "```message\nLook closely at what comes back.\n```"),  # valid, dup
                      ans("```input\n7\n```\n```message\nm\n```")],  # 1 input: invalid
    }
    results = {t: sp.validate_proposals(pool, reqs[t], texts[t], CFG) for t in reqs}
    outcomes = {t: [r.outcome for r in results[t]] for t in results}
    assert outcomes == {
        "deduction": [sp.PASSED, sp.FORMAT_ERROR, sp.FAILED, sp.FAILED],
        "abduction": [sp.PASSED, sp.FORMAT_ERROR],
        "induction": [sp.PASSED, sp.FAILED],
    }, {t: [r.reason for r in rs] for t, rs in results.items()}
    assert results["deduction"][0].task == sp.Triplet(SORT, "[3, 1, 2]", "[3, 2, 1]")
    assert results["abduction"][0].task == sp.Triplet(MUL, "3, 4", "13")
    ind_task = results["induction"][0].task
    assert ind_task.inputs == ("5", "12", "40")  # de-duplicated
    assert ind_task.program == ind_prog
    assert "random" in results["deduction"][2].reason
    assert "fewer than 2" in results["induction"][1].reason

    # ---- learnability: n=2 scripted rollouts per valid task ----
    def solve_all(t, task, answers):
        st = sp.solver_task(t, task, CFG)
        parsed = [sp.parse_answer(t, a) for a in answers]
        return sp.grade_answers(pool, [st] * len(parsed), parsed)

    rollouts = {
        "deduction": [solve_all("deduction", results["deduction"][0].task,
                                [ans("[3, 2, 1]"), ans("[1, 2, 3]")]), [], [], []],
        "abduction": [solve_all("abduction", results["abduction"][0].task,
                                [ans("2, 6"), ans("4, 3")]), []],
        "induction": [solve_all("induction", ind_task,
                                [ans(f"```python\n{ind_prog}\n```"),
                                 ans("```python\ndef f(x):\n    return None\n```")]), []],
    }
    assert rollouts["deduction"][0] == [True, False]
    assert rollouts["abduction"][0] == [True, True]   # any input giving 13 counts
    assert rollouts["induction"][0] == [True, False]
    prop_rewards = {t: sp.proposer_rewards(outcomes[t], rollouts[t], CFG) for t in results}
    assert prop_rewards == {"deduction": [0.5, -1.0, -0.5, -0.5],
                            "abduction": [0.0, -1.0],   # always solved: learnability 0
                            "induction": [0.5, -0.5]}

    # ---- buffers grow; solver batches (new tasks first, then the buffer) ----
    assert sum(sp.add_valid(buffers, results[t]) for t in results) == 3
    assert buffers.sizes() == {"deduction": 3, "abduction": 2, "induction": 2}
    assert sp.add_valid(buffers, results["deduction"]) == 0  # de-duplicated
    solver_tasks, answers = [], []
    for t in ("deduction", "abduction", "induction"):
        tasks = sp.fill_tasks(t, results[t], buffers, CFG.batch_per_group, rng)
        assert len(tasks) == 3 and tasks[0] == results[t][0].task
        assert all(task in buffers[t] for task in tasks)
        for j, task in enumerate(tasks):
            st = sp.solver_task(t, task, CFG)
            solver_tasks.append(st)
            right = {"deduction": task.output if t == "deduction" else "",
                     "abduction": task.input if t == "abduction" else "",
                     "induction": f"```python\n{task.program}\n```"}[t]
            wrong = {"deduction": "'nope'", "abduction": "'nope'",
                     "induction": "```python\ndef f(x):\n    return 'nope'\n```"}[t]
            # deduction/abduction: right, wrong, format error; induction: right, right, format.
            script = [ans(right), ans(wrong) if t != "induction" else ans(right), "no tags"]
            answers.append(sp.parse_answer(t, script[j]))
    correct = sp.grade_answers(pool, solver_tasks, answers)
    assert correct == [True, False, False] * 2 + [True, True, False]
    outcomes_s = sp.answer_outcomes(answers, correct)
    sol_rewards = sp.solver_rewards(outcomes_s, CFG)
    assert sol_rewards == [1.0, -0.5, -1.0] * 2 + [1.0, 1.0, -1.0]

    # ---- TRR++ advantages over the 6 groups ----
    rewards, groups = [], []
    for t in ("deduction", "abduction", "induction"):
        rewards += prop_rewards[t]
        groups += [sp.group_id(t, "propose")] * len(prop_rewards[t])
    rewards += sol_rewards
    groups += [sp.group_id(st.task_type, "solve") for st in solver_tasks]
    adv = advantages.get("trr++_seq")(np.array(rewards), np.array(groups))  # per-sequence form
    expected = ([1.605910, -1.147079, -0.229416, -0.229416]   # deduction propose
                + [1.0, -1.0]                                   # abduction propose
                + [1.0, -1.0]                                   # induction propose
                + [1.372813, -0.392232, -0.980581] * 2          # ded/abd solve
                + [0.707107, 0.707107, -1.414214])              # induction solve
    np.testing.assert_allclose(adv, expected, atol=1e-5)
    assert sorted(set(groups)) == list(range(6))


def test_bad_program_is_failed_not_format_error(pool):
    buffers = sp.Buffers.from_config(CFG)
    reqs = sp.proposer_requests("abduction", buffers, 2, np.random.default_rng(1), CFG)
    res = sp.validate_proposals(pool, reqs, [
        prop("def f(x):\n    return x +", "1"),                           # syntax error
        prop("def f(x):\n    while True:\n        pass", "1"),            # timeout
    ], CFG)
    assert [r.outcome for r in res] == [sp.FAILED, sp.FAILED]
    assert [sp.proposer_composite(r.outcome, None, CFG) for r in res] == [-0.5, -0.5]


def test_seed_file_validated_by_the_executor(pool, tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"snippet": "def f(x):\\n    return x * 3", "input": "2"}\n'
                    '{"code": "def f(s):\\n    return s.upper()", "input": "\'ab\'", '
                    '"output": "\'AB\'"}\n')
    cfg = dataclasses.replace(CFG, seed_file=str(path))
    bufs = sp.Buffers.from_config(cfg, pool)
    assert bufs["deduction"].tasks[1:] == [sp.Triplet("def f(x):\n    return x * 3", "2", "6"),
                                           sp.Triplet("def f(s):\n    return s.upper()", "'ab'", "'AB'")]
    path.write_text('{"program": "def f(x):\\n    return x * 3", "input": "2", "output": "7"}\n')
    with pytest.raises(UserError,
                       match="says output '7' but the program returns 6"):
        sp.Buffers.from_config(cfg, pool)
    path.write_text('{"program": "import os\\ndef f(x):\\n    return x", "input": "2"}\n')
    with pytest.raises(UserError, match="banned import: os"):
        sp.Buffers.from_config(cfg, pool)


def test_seeding_phase_fills_every_buffer(pool):
    cfg = dataclasses.replace(CFG, seed_buffer_size=3, batch_per_group=2)
    buffers = sp.Buffers.from_config(cfg)
    counter = iter(range(1000))

    def propose(prompts):  # scripted model: a fresh valid task per prompt, some junk
        out = []
        for msgs in prompts:
            n = next(counter)
            if "write inputs and a message" in msgs[-1]["content"]:
                out.append(ans(f"```input\n{n}\n```\n```input\n{n + 1}\n```\n```message\nm\n```"))
            else:
                out.append(prop(f"def f(x):\n    return x + {n}", "1") if n % 3 else "junk")
        return out

    sizes = sp.seed_buffers(pool, buffers, propose, cfg, np.random.default_rng(0), progress=False)
    assert all(v >= 3 for v in sizes.values()), sizes
    assert sizes == buffers.sizes()
    never = dataclasses.replace(cfg, seed_buffer_size=5)
    with pytest.raises(UserError, match="seeding stopped after 2 rounds"):
        sp.seed_buffers(pool, sp.Buffers.from_config(never), lambda ps: ["junk"] * len(ps),
                        never, np.random.default_rng(0), max_rounds=2, progress=False)
