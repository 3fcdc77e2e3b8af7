"""AZR semantics, pool API (order, futures, scripts, worker replacement, batch deadline),
the CRUXEval scorer and the CLI."""

import json
import math
import os
import signal
import time

import pytest

from azr_jax.errors import UserError
from azr_jax.executor import Job, SandboxConfig, SandboxPool
from azr_jax.executor.azr import (
    BAN_LISTS,
    check_program,
    check_with,
    grade_abduction,
    grade_deduction,
    grade_induction,
    validate_tasks,
)
from azr_jax.executor import cruxeval_official as cruxeval

REV = "def f(x):\n    return x[::-1]"
# Counts its calls in state that outlives one run (an imported module): run 1 -> 1, run 2 -> 2.
COUNTER = "import math\ndef f(x):\n    math.calls = getattr(math, 'calls', 0) + 1\n    return math.calls"


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(SandboxConfig(workers=2, timeout_s=1.0, memory_mb=256)) as p:
        yield p


@pytest.mark.parametrize("code,needle", [
    ("def f(x:\n  return x", "syntax error"),
    ("def g(x):\n    return x", "no top-level function 'f'"),
    ("def f(x): return 1\ndef f(x): return 2", "defined 2 times"),
    ("import random\ndef f(x): return random.random()", "banned import: random"),
    ("from os import path\ndef f(x): return x", "banned import: os"),
    ("import os.path\ndef f(x): return x", "banned import: os.path"),
    ("def f(x):\n    import time\n    return time.time()", "banned import: time"),
    ("def f(x): return __import__('os')", "banned call: __import__"),
    ("def f(x): return eval('1')", "banned call: eval"),
    ("def f(x): return ().__class__.__subclasses__()", "banned attribute"),
])
def test_check_program_rejects(code, needle):
    reason = check_program(code)
    assert reason is not None and needle in reason, reason


def test_check_program_accepts_and_is_configurable():
    assert check_program("import collections\ndef helper(y): return y\ndef f(x): return helper(x)") is None
    assert check_program("import random\ndef f(x): return x", banned=set()) is None
    assert check_program("import math\ndef f(x): return x", banned={"math"}) == "banned import: math"


def test_validate_tasks(pool):
    items = [
        (REV, ["'abc'", "[1, 2, 3]"]),
        ("def f(a, b):\n    return {a: b}", ["'k', [1]"]),
        ("import random\ndef f(x): return x", ["1"]),
        (COUNTER, ["1"]),
        ("def f(x):\n    return 1 / x", ["0"]),
        ("def f(x):\n    while True: pass", ["1"]),
        ("def f(x:", ["1"]),
        ("def g(x): return x", ["1"]),
    ]
    v = validate_tasks(pool, items)
    assert v[0].ok and v[0].outputs == ["'cba'", "[3, 2, 1]"]
    assert v[1].ok and v[1].outputs == ["{'k': [1]}"]
    assert not v[2].ok and "banned import" in v[2].reason
    assert not v[3].ok and v[3].reason == "non-deterministic"
    assert not v[4].ok and "ZeroDivisionError" in v[4].reason
    assert not v[5].ok and v[5].reason == "timeout"
    assert not v[6].ok and "syntax error" in v[6].reason
    assert not v[7].ok and "no top-level function" in v[7].reason


def test_nondeterministic_counter_rejected(pool):
    res = pool.run([Job(COUNTER, ["1"])])[0]
    assert not res.ok and not res.deterministic and res.first_error == "non-deterministic"
    assert pool.run([Job(COUNTER, ["1"], repeats=1)])[0].ok
    v = validate_tasks(pool, [("import itertools\nc = itertools.count()\ndef f(x):\n    return next(c)", ["1"])])[0]
    assert v.ok  # module state is fresh per run: each run re-executes the program


def test_grade_deduction():
    assert grade_deduction("[1, 2]", "[1,2]")
    assert grade_deduction("{'a': (1, 2.0)}", "{'a': (1, 2)}")
    assert grade_deduction(" 'x' ", "'x'")
    assert not grade_deduction("[1, 2]", "[2, 1]")
    assert not grade_deduction("__import__('os').getcwd()", "'/'")  # never evaluated
    assert grade_deduction("set()", "set()")
    assert not grade_deduction("1" * 200_000, "1")


def test_grade_abduction(pool):
    items = [(REV, "'cba'", "'abc'"), (REV, "'abc'", "'abc'"), (REV, "1); import os; (", "'x'"),
             ("def f(a, b):\n    return a + b", "2, 3", "5")]
    assert grade_abduction(pool, items) == [True, False, False, True]


def test_grade_induction(pool):
    inputs, golds = ["'ab'", "'xyz'"], ["'ba'", "'zyx'"]
    items = [
        (REV, inputs, golds),
        ("def f(x):\n    return ''.join(reversed(x))", inputs, golds),
        ("def f(x):\n    return x", inputs, golds),
        ("import os\ndef f(x):\n    return x[::-1]", inputs, golds),  # banned import
        ("def f(x):\n    return x[::-1] if len(x) < 3 else x", inputs, golds),  # one wrong
    ]
    assert grade_induction(pool, items) == [True, True, False, False, False]


def test_results_in_order_and_futures(pool):
    jobs = [Job("def f(x):\n    return x * 2", [str(i)], repeats=1) for i in range(200)]
    fut = pool.submit(jobs)
    res = fut.result(timeout=60)
    assert [r.output for r in res] == [str(2 * i) for i in range(200)]
    assert pool.run([]) == []


def test_run_script(pool):
    res = pool.run_script(["print('hi')\nimport sys\nprint('e', file=sys.stderr)",
                           "assert 1 == 2", "import sys\nsys.exit(0)", "while True: pass"],
                          script_timeout_s=0.5)
    assert res[0].ok and res[0].stdout == "hi\n" and res[0].stderr == "e\n" and res[0].exit_code == 0
    assert not res[1].ok and "AssertionError" in res[1].error
    assert not res[2].ok and res[2].exit_code == 0  # SystemExit counts as a failure (harness rule)
    assert not res[3].ok and res[3].timed_out


def test_dead_worker_is_replaced():
    with SandboxPool(SandboxConfig(workers=1, timeout_s=1.0)) as p:
        before = p.workers[0].proc.pid
        os.kill(before, signal.SIGKILL)
        res = p.run([Job(REV, ["'ab'"])] * 3)
        assert all(r.ok for r in res) or "died" in (res[0].first_error or "")
        assert p.run([Job(REV, ["'ab'"])])[0].output == "'ba'"
        assert p.workers[0].proc.pid != before and p.restarts >= 1


def test_batch_deadline_bounds_a_call_even_if_workers_hang():
    with SandboxPool(SandboxConfig(workers=1, timeout_s=1.0)) as p:
        os.kill(p.workers[0].proc.pid, signal.SIGSTOP)  # a stuck worker
        t0 = time.monotonic()
        res = p.run([Job(REV, ["'ab'"])] * 5, timeout=1.0)
        assert time.monotonic() - t0 < 5.0
        assert all(not r.ok and r.first_error == "batch deadline exceeded" for r in res)
        assert p.run([Job(REV, ["'ab'"])])[0].output == "'ba'"  # the stuck worker was replaced


def test_pass_at_k_matches_official_formula():
    import numpy as np

    def official(n, c, k):
        if n - c < k:
            return 1.0
        return 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))

    for n, c, k in [(10, 3, 1), (10, 3, 5), (5, 0, 5), (1, 0, 5), (20, 19, 5), (7, 2, 5)]:
        assert cruxeval.pass_at_k(n, c, k) == pytest.approx(official(n, c, k), abs=1e-12)


def _write_crux(tmp_path):
    data = [{"id": "sample_0", "code": "def f(x):\n    return x + 1", "input": "1", "output": "2"},
            {"id": "sample_1", "code": "def f(s):\n    return s[::-1]", "input": "'ab'", "output": "'ba'"}]
    ds = tmp_path / "crux.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in data))
    return ds


def test_cruxeval_output_and_input_modes(pool, tmp_path):
    ds = cruxeval.read_dataset(str(_write_crux(tmp_path)))
    gens_o = [["2", "3", "f(1)"], ["'ba'"]]  # "f(1)" repeats the call: rejected unexecuted
    r = cruxeval.score(pool, ds, gens_o, "output")
    assert r["raw_scored_generations"] == {"sample_0": [True, False, False], "sample_1": [True]}
    assert r["pass_at_1"] == pytest.approx((1 / 3 + 1) / 2 * 100)
    assert "pass_at_5" not in r  # 3 and 1 generations: pass@5 is no estimate (issue 18.4)
    r = cruxeval.score(pool, ds, [g * 5 for g in gens_o], "output")  # 15 and 5 generations
    assert r["pass_at_5"] == pytest.approx((1 - math.comb(10, 5) / math.comb(15, 5) + 1) / 2 * 100)
    gens_i = [["f(1)", "1", "f(2)"], ["f('ba')", "f('ab')"]]  # "1" has no call: rejected
    r = cruxeval.score(pool, ds, gens_i, "input")
    assert r["raw_scored_generations"] == {"sample_0": [True, False, False], "sample_1": [False, True]}


def test_cli_execute(tmp_path, capsys):
    from azr_jax.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": 1, "code": REV, "input": "'abc'"}),
        "{not json",
        json.dumps({"id": 3, "code": REV}),
        json.dumps({"id": 4, "code": REV, "input": "[1, 2]"}),
        json.dumps({"id": 5, "code": COUNTER, "input": "1"}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    rc = main(["execute", "--input", str(src), "--output", str(out), "--workers", "1", "--timeout", "1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{src}:2: malformed JSON" in err and f"{src}:3: missing field(s) input" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 4, 5]
    assert rows[0]["ok"] and rows[0]["output"] == "'cba'" and rows[0]["deterministic"]
    assert rows[1]["output"] == "[2, 1]"
    assert not rows[2]["ok"] and not rows[2]["deterministic"]
    assert main(["execute", "--input", str(tmp_path / "nope.jsonl"), "--output", str(out)]) == 2
    assert "input file not found" in capsys.readouterr().err


def test_cli_score_cruxeval(tmp_path, capsys):
    from azr_jax.cli import main

    ds = _write_crux(tmp_path)
    gen = tmp_path / "gen.json"
    gen.write_text(json.dumps({"sample_0": ["2", "5"], "sample_1": ["'ba'", "'ba'"]}))
    rc = main(["score-cruxeval", "--task", "output", "--dataset", str(ds), "--generations", str(gen),
               "--workers", "1"])
    assert rc == 0
    assert "pass@1: 75.0\n" in capsys.readouterr().out  # 2 generations: no pass@5
    scored = json.loads((tmp_path / "gen.json.scored.json").read_text())
    assert scored["raw_scored_generations"] == {"sample_0": [True, False], "sample_1": [True, True]}
    gen.write_text(json.dumps({"sample_0": ["2"] * 5, "sample_1": ["'ba'", "1"] * 3}))
    assert main(["score-cruxeval", "--task", "output", "--dataset", str(ds), "--generations",
                 str(gen), "--workers", "1"]) == 0
    assert "pass@1: 75.0 pass@5: 100.0" in capsys.readouterr().out
    gen.write_text(json.dumps({"sample_0": ["2"]}))
    assert main(["score-cruxeval", "--task", "output", "--dataset", str(ds), "--generations", str(gen)]) == 2
    assert "sample_1" in capsys.readouterr().err
    with pytest.raises(UserError, match=r"bad\.jsonl:1: missing field"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"code": "x"}\n')
        cruxeval.read_dataset(str(bad))


def test_identical_jobs_run_once(pool):
    class Counting:
        config, jobs = pool.config, []

        def run(self, jobs, timeout=None):
            self.jobs.append(len(jobs))
            return pool.run(jobs, timeout=timeout)

    counting = Counting()
    items = [(REV, "'cba'", "'abc'")] * 4 + [(REV, "'xyz'", "'abc'"), (REV, "'cba' ", "'abc'")]
    assert grade_abduction(counting, items) == [True] * 4 + [False, True]
    assert counting.jobs == [2]  # 'cba' and 'cba ' rebuild to the same call
    induction = [(REV, ["'ab'"], ["'ba'"])] * 3 + [("def f(x):\n    return x", ["'ab'"], ["'ba'"])]
    assert grade_induction(counting, induction) == [True, True, True, False]
    assert counting.jobs == [2, 2]


def test_official_ban_list_is_the_officials_only(pool):
    official, strict = BAN_LISTS["official"], BAN_LISTS["strict"]
    dunder = "def f(x):\n    return f.__globals__ is not None"
    twice = "def f(x):\n    return 1\ndef f(x):\n    return 2"
    assert check_with(dunder, official) is None
    assert check_with(dunder, strict) == "banned attribute: __globals__"
    assert check_with(twice, official) is None and "defined 2 times" in check_with(twice, strict)
    v = validate_tasks(pool, [(twice, ["0"]), (REV, ["'a'"]), (REV, ["input('x')"])],
                       bans=official)
    assert [x.ok for x in v] == [True, True, False] and v[0].outputs == ["2"]
    assert v[2].reason == "banned text in an input: input("  # the official checks all it runs
    answers = [(REV, "'input('", "'(tupni'"), (REV, "'(tupni'", "'input('")]
    assert grade_abduction(pool, answers, bans=official) == [False, True]
