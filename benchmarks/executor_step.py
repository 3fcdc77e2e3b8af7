"""Executor work of one paper-shaped AZR step: ours per isolation tier vs the official calls.

Built from generated programs (the corpus templates of benchmarks/executor.py), one step as
the paper runs it (64 tasks per type, ``azr.reward.n_samples=8``, ``num_inputs=10``):
  proposals   192 proposals validated with the determinism check: 64 abduction and 64
              deduction proposals (program + one input), 64 induction proposals (program +
              10 inputs, each checked); ~10% of them fail (raise, or are non-deterministic);
  rollouts    8 learnability rollouts per valid task: deduction answers compared (half
              right: decided in the trainer; half wrong: run), abduction inputs run,
              induction programs run on the 5 hidden inputs;
  solver      192 solver answers graded (64 per type, as above).
The official side re-creates the reward manager's calls (rewards/reward_managers.py with its
defaults: ``executor_max_workers=1``, ``batched_estimate=False``): one ``check_all`` per
proposal and per induction input, one ``eval_input_prediction`` /
``eval_output_prediction`` per (program, answer) pair, each one synchronous round trip
(benchmarks/azr_official_executor.py). Ours: ``validate_tasks`` / ``grade_*`` of
azr_jax.executor.azr, batched, on ``--workers`` workers. Every piece is timed for every
side in the same run; the grades of both sides are compared.

    .venv/bin/python benchmarks/executor_step.py [--tasks 64] [--workers N] [--tiers process,reuse]

The trainer's default (configs/base.py) runs proposals and grading in "process": that is the
"process" column; "reuse" is the opt-in tier (docs/sandbox.md, "Isolation tiers").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

from azr_official_executor import OfficialExecutor  # noqa: E402
from executor import BANNED, TEMPLATES, exec_twice, make_input  # noqa: E402

from azr_jax.executor import SandboxConfig, SandboxPool  # noqa: E402
from azr_jax.executor.azr import (BAN_LISTS, grade_abduction, grade_deductions,  # noqa: E402
                                  grade_induction, validate_tasks)

ROLLOUTS = 8
HIDDEN = 5
# Proposals both sides reject. (Not a non-deterministic one: the official check_all accepts
# those, with output '', since "Exception: Non-deterministic code" does not say "error".)
FAILING = ["def f(x):\n    raise ValueError(x)", "def f(x):\n    return x + 1"]


def make_step(n_tasks, seed=0):
    """Proposals per type, then the answers of rollouts and solver, all from one seed."""
    rng = random.Random(seed)
    letters = "abcdefghij"

    def program():
        if rng.random() < 0.1:
            return rng.choice(FAILING), "str"
        tpl, kind = rng.choice(TEMPLATES)
        return tpl.format(a=rng.randint(1, 4), b=rng.randint(0, 9), p=rng.randint(0, 1),
                          r=rng.choice([True, False]), m=rng.randint(2, 11), s=rng.randint(1, 3),
                          c=rng.choice(letters), d=rng.choice(letters)), kind

    step = {}
    for kind_name, n_inputs in (("abduction", 1), ("deduction", 1), ("induction", 2 * HIDDEN)):
        tasks = []
        for _ in range(n_tasks):
            code, kind = program()
            tasks.append((code, kind, [make_input(kind, rng) for _ in range(n_inputs)]))
        step[kind_name] = tasks
    step["rng"] = rng
    return step


def gold(code, inputs):
    """(ok, [repr outputs]) computed in-process (trusted generated code)."""
    try:
        outs = [exec_twice(code, i) for i in inputs]
    except Exception:  # noqa: BLE001
        return False, []
    return all(same for _, same in outs), [o for o, _ in outs]


def answers_for(step, valid, n_answers):
    """Per valid task, ``n_answers`` answers: half right, half wrong (as a model's would)."""
    rng, out = step["rng"], {"abduction": [], "deduction": [], "induction": []}
    for kind_name, tasks in valid.items():
        for code, kind, inputs, outputs in tasks:
            for k in range(n_answers):
                right = k % 2 == 0
                if kind_name == "abduction":
                    out[kind_name].append((code, inputs[0] if right else make_input(kind, rng),
                                           outputs[0]))
                elif kind_name == "deduction":
                    out[kind_name].append((code, outputs[0] if right else repr(rng.random()),
                                           outputs[0]))
                else:
                    cand = code if right else program_variant(code, rng)
                    out[kind_name].append((cand, inputs[HIDDEN:], outputs[HIDDEN:]))
    return out


def program_variant(code, rng):
    """A plausible wrong induction answer: the program with one constant changed."""
    for d in "123456789":
        if d in code:
            return code.replace(d, str(rng.randint(0, 9)), 1)
    return code + "\n# variant"


# ---- the official side: one synchronous round trip per call ---------------------------
def official_proposals(ex, step):
    valid = {k: [] for k in ("abduction", "deduction", "induction")}
    for kind_name, tasks in ((k, step[k]) for k in valid):
        for code, kind, inputs in tasks:
            outs = []
            for inp in inputs:
                ok, out = ex.check_all(code, inp)
                if not ok:
                    break
                outs.append(out)
            else:
                valid[kind_name].append((code, kind, inputs, outs))
    return valid


def official_grade(ex, answers):
    scores = {"abduction": [], "deduction": [], "induction": []}
    for code, pred, gold_out in answers["abduction"]:
        scores["abduction"].append(ex.eval_input_prediction(code, gold_out, pred))
    for code, pred, gold_out in answers["deduction"]:
        scores["deduction"].append(ex.eval_output_prediction(code, gold_out, pred))
    for code, inputs, outs in answers["induction"]:
        accs = [ex.eval_input_prediction(code, o, i) for i, o in zip(inputs, outs)]
        scores["induction"].append(float(all(a == 1.0 for a in accs)))
    return scores


# ---- ours: batched calls on the pool ---------------------------------------------------
def ours_proposals(pool, step):
    valid = {}
    for kind_name in ("abduction", "deduction", "induction"):
        tasks = step[kind_name]
        res = validate_tasks(pool, [(code, inputs) for code, _, inputs in tasks],
                             bans=BAN_LISTS["official"])
        valid[kind_name] = [(code, kind, inputs, v.outputs)
                            for (code, kind, inputs), v in zip(tasks, res) if v.ok]
    return valid


def ours_grade(pool, answers):
    bans = BAN_LISTS["official"]
    return {"abduction": [float(g) for g in grade_abduction(pool, answers["abduction"])],
            "deduction": [float(g) for g in grade_deductions(pool, answers["deduction"])],
            "induction": [float(g) for g in grade_induction(pool, answers["induction"], bans)]}


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=64, help="tasks per type (paper: 64)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--tiers", default="process,reuse")
    args = ap.parse_args()
    tiers = args.tiers.split(",")
    step = make_step(args.tasks)
    ex = OfficialExecutor(timeout_length=10, max_workers=1, banned=BANNED)
    try:
        ex.check_all("def f(x):\n    return x", "1")  # start its pool
        t_prop, valid = timed(official_proposals, ex, step)
        rollouts = answers_for(step, valid, ROLLOUTS)
        solver = answers_for(step, valid, 1)
        t_roll, off_roll = timed(official_grade, ex, rollouts)
        t_solv, off_solv = timed(official_grade, ex, solver)
    finally:
        ex.close()
    times = {"official": (t_prop, t_roll, t_solv)}
    n_valid = {k: len(v) for k, v in valid.items()}
    calls = (sum(len(t[2]) for k in ("abduction", "deduction", "induction") for t in step[k]),
             sum(len(v) for v in rollouts.values()), sum(len(v) for v in solver.values()))
    for tier in tiers:
        cfg = SandboxConfig(workers=args.workers, timeout_s=10.0, isolation=tier)
        with SandboxPool(cfg) as pool:
            ours_proposals(pool, make_step(4, seed=1))  # warm the workers
            tp, ours_valid = timed(ours_proposals, pool, step)
            tr, our_roll = timed(ours_grade, pool, rollouts)
            ts, our_solv = timed(ours_grade, pool, solver)
        assert {k: len(v) for k, v in ours_valid.items()} == n_valid, (tier, n_valid)
        for name, ours, off in (("rollouts", our_roll, off_roll), ("solver", our_solv, off_solv)):
            if ours != off:
                diff = [(k, i) for k in ours for i, (a, b) in enumerate(zip(ours[k], off[k])) if a != b]
                print(f"note: {tier} {name}: {len(diff)} grades differ from the official's "
                      f"({', '.join(sorted({k for k, _ in diff}))})")
                if os.environ.get("AZR_STEP_DEBUG"):
                    answers = rollouts if name == "rollouts" else solver
                    for k, i in diff[:3]:
                        print(k, answers[k][i], "ours", ours[k][i], "official", off[k][i])
        times[tier] = (tp, tr, ts)
    print(f"step: {args.tasks} tasks per type, valid {n_valid}, {args.workers} workers "
          f"(official: 1 pebble worker, as its config); items: proposals {calls[0]} inputs, "
          f"rollout answers {calls[1]}, solver answers {calls[2]}")
    print(f"{'piece':10s} {'official s':>11s} " + " ".join(f"{t + ' s':>10s} {'x':>6s}" for t in tiers))
    for i, piece in enumerate(("proposals", "rollouts", "solver", "step")):
        off = times["official"][i] if i < 3 else sum(times["official"])
        row = f"{piece:10s} {off:11.2f} "
        for tier in tiers:
            ours = times[tier][i] if i < 3 else sum(times[tier])
            row += f"{ours:10.2f} {off / ours:5.2f}x "
        print(row)
    if "process" in times:  # the trainer's default tiers (configs/base.py executor)
        recipe = sum(times["process"])
        print(f"trainer default (proposals and grading in process): {recipe:.2f} s per step, "
              f"{sum(times['official']) / recipe:.2f}x the official; cpu cores {os.cpu_count()}")
    print(f"load average: {os.getloadavg()[0]:.1f} (shared machine, nice 19: compare ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
