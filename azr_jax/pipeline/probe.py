"""A fixed probe of what self-play teaches: the solver's greedy accuracy on held-out tasks.

    probe = build_probe(pool, path, selfplay_cfg, task_types)   # once, before step 1
    metrics = probe_metrics(probe, answer_fn, pool, selfplay_cfg)  # step 0, then every few

The probe file (`probe.file`; configs/probe/learn.jsonl for `make learn`) holds our own
small programs, each with a few inputs and a message. Each row becomes one task per type,
built by the type's ``probe_task`` (e.g. deduction on its first input, abduction on its
second, induction on all of them; outputs computed by the executor). The tasks never enter the buffers, so the policy is never
trained on them. Metrics: ``probe/<type>_acc``, ``probe/acc`` (all tasks), and
``probe/valid_rate`` (the step's proposals that passed validation, averaged over types; see
``valid_rate``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax import jsonl

AnswerFn = Callable[[Sequence[sp.SolverTask]], list[str]]  # whole assistant turns, greedy


@dataclasses.dataclass(frozen=True)
class Probe:
    tasks: tuple[sp.SolverTask, ...]

    def types(self) -> list[str]:
        return list(dict.fromkeys(t.task_type for t in self.tasks))


def load_rows(path: str) -> list[dict]:
    rows = []
    for lineno, row in jsonl.iter_objects(path, missing="probe file {path!r} does not exist"):
        if not (isinstance(row, dict) and isinstance(row.get("program"), str)
                and isinstance(row.get("inputs"), list) and len(row["inputs"]) >= 2
                and isinstance(row.get("message"), str)):
            raise UserError(f"{jsonl.where(path, lineno)}: expected a JSON object with program, "
                            "inputs (a list of at least 2 input texts) and message")
        rows.append(row)
    return rows


def build_probe(pool, path: str, cfg: sp.SelfPlayConfig, task_types: Sequence[str]) -> Probe:
    """The probe's solver tasks, in file order per type; deterministic (no randomness)."""
    rows = load_rows(path)
    tasks = [sp.registry.get(t).probe_task(r) for t in task_types for r in rows]
    tasks = sp.validate_seeds(pool, tasks, cfg)  # computes the gold outputs
    types = [t for t in task_types for _ in rows]
    return Probe(tuple(sp.solver_task(t, task, cfg) for t, task in zip(types, tasks)))


def valid_rate(step_metrics: dict) -> float:
    vals = [v for k, v in step_metrics.items() if k.startswith("valid_rate/")]
    return float(sum(vals) / len(vals)) if vals else 0.0


def probe_metrics(probe: Probe, answer_fn: AnswerFn, pool, cfg: sp.SelfPlayConfig) -> dict:
    """Greedy answers to every probe task, graded by the executor (a format error is wrong)."""
    texts = answer_fn(probe.tasks)
    answers = [sp.parse_answer(st.task_type, t) for st, t in zip(probe.tasks, texts)]
    correct = sp.grade_answers(pool, probe.tasks, answers, cfg)
    out = {}
    for t in probe.types():
        mine = [(a, c) for st, a, c in zip(probe.tasks, answers, correct) if st.task_type == t]
        out[f"probe/{t}_acc"] = sum(c for _, c in mine) / len(mine)
        out[f"probe/{t}_format_error"] = sum(isinstance(a, sp.FormatError)
                                             for a, _ in mine) / len(mine)
    out["probe/acc"] = sum(correct) / max(1, len(correct))
    return out


def greedy_answer_fn(ctx, params) -> AnswerFn:
    """Answers from the policy ``params`` sampled greedily with the run's prompts and
    prefixes (``ctx``: the trainer's rollout.RolloutContext)."""
    import jax

    from azr_jax.pipeline import rollout
    from azr_jax.sampling import prepare_params

    gctx = dataclasses.replace(ctx, sampling=ctx.sampling.replace(temperature=0.0))

    def answer(tasks):
        p = prepare_params(params, gctx.model_cfg, gctx.mesh)
        return rollout.solve_rollouts(gctx, p, tasks, jax.random.PRNGKey(0))[3]

    return answer


def from_config(cfg, ctx) -> Probe | None:
    """The run's probe (config section ``probe``: ``every`` steps, ``file``), or None."""
    pcfg = cfg.get("probe")
    if pcfg is None or pcfg.get("every", 0) <= 0:
        return None
    return build_probe(ctx.pool, pcfg.file, ctx.selfplay, list(ctx.selfplay.task_types))


def accuracy_metrics(probe: Probe | None, ctx, params) -> dict:
    """The greedy accuracies of the policy ``params`` (the trainer logs them before the
    first update, as the step-0 row, and every ``probe.every`` steps); {} without a probe."""
    if probe is None:
        return {}
    return probe_metrics(probe, greedy_answer_fn(ctx, params), ctx.pool, ctx.selfplay)


def step_metrics(probe: Probe | None, cfg, ctx, params, step_metrics: dict, done: int) -> dict:
    """The probe's metrics after update ``done`` (accuracy every ``probe.every`` steps and
    after the last, the valid-proposal rate every step); {} without a probe."""
    if probe is None:
        return {}
    out = {"probe/valid_rate": valid_rate(step_metrics)}
    if done % cfg.probe.every == 0 or done == cfg.trainer.steps:
        out.update(accuracy_metrics(probe, ctx, params))
    return out
