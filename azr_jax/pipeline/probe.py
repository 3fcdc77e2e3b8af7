"""Fixed probes of what self-play teaches: the solver's greedy accuracy (and, at the two
ends of a run, its sampled pass@k) on tasks that never enter the buffers.

    probes = from_config(cfg, ctx)                        # once, before step 1
    metrics = accuracy_metrics(probes, ctx, params)       # step 0, then every few steps

Two probes, each from a file of our own small programs with a few inputs and a message
(``load_rows``); each row becomes one task per type, built by the type's ``probe_task``
(e.g. deduction on its first input, abduction on its second, induction on all of them;
outputs computed by the executor):

- ``heldout`` (``probe.heldout_file``; configs/probe/heldout.jsonl for `make learn`):
  programs unlike the seeds and unlike each other, so a rise here is reasoning about new
  code;
- ``seen`` (``probe.file``; configs/probe/learn.jsonl): the seed programs with new inputs,
  so a rise here may be recall of the seeds.

Metrics, per probe NAME: ``probe/NAME/acc`` (all tasks), ``probe/NAME/<type>_acc``,
``probe/NAME/<type>_format_error``; with ``probe.passk_samples`` = n > 0,
``probe/NAME/pass@1`` ... ``pass@n`` (n samples per task at temperature 1, the unbiased
estimator of azr_jax.passk) in the step-0 row and the last step's row; and
``probe/valid_rate`` (the step's proposals that passed validation, averaged over types).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from azr_jax import jsonl
from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax.passk import pass_at_k

AnswerFn = Callable[[Sequence[sp.SolverTask]], list[str]]  # whole assistant turns, greedy
# (tasks, n) -> (n whole assistant turns per task, the task index of each turn)
SampleFn = Callable[[Sequence[sp.SolverTask], int], tuple[list[str], list[int]]]

# (probe name, the `probe` config key of its file), in the order the metrics, the report
# and `make learn`'s summary show them: the held-out probe leads.
PROBE_FILES = (("heldout", "heldout_file"), ("seen", "file"))
PROBE_NAMES = tuple(name for name, _ in PROBE_FILES)
PASSK_TEMPERATURE = 1.0
PASSK_SEED = 0  # one fixed key: the base and the trained model draw with the same key


@dataclasses.dataclass(frozen=True)
class Probe:
    name: str  # its metrics are probe/<name>/...
    tasks: tuple[sp.SolverTask, ...]

    def types(self) -> list[str]:
        return list(dict.fromkeys(t.task_type for t in self.tasks))

    def key(self, what: str) -> str:
        return f"probe/{self.name}/{what}"


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


def build_probe(pool, path: str, cfg: sp.SelfPlayConfig, task_types: Sequence[str],
                name: str = "seen") -> Probe:
    """The probe's solver tasks, in file order per type; deterministic (no randomness)."""
    rows = load_rows(path)
    tasks = [sp.registry.get(t).probe_task(r) for t in task_types for r in rows]
    tasks = sp.validate_seeds(pool, tasks, cfg)  # computes the gold outputs
    types = [t for t in task_types for _ in rows]
    return Probe(name, tuple(sp.solver_task(t, task, cfg) for t, task in zip(types, tasks)))


def valid_rate(step_metrics: dict) -> float:
    vals = [v for k, v in step_metrics.items() if k.startswith("valid_rate/")]
    return float(sum(vals) / len(vals)) if vals else 0.0


def _grade(probe: Probe, task_idx: Sequence[int], texts: Sequence[str], pool, cfg):
    tasks = [probe.tasks[i] for i in task_idx]
    answers = [sp.parse_answer(st.task_type, t) for st, t in zip(tasks, texts)]
    return answers, sp.grade_answers(pool, tasks, answers, cfg)


def probe_metrics(probe: Probe, answer_fn: AnswerFn, pool, cfg: sp.SelfPlayConfig) -> dict:
    """Greedy answers to every probe task, graded by the executor (a format error is wrong)."""
    answers, correct = _grade(probe, range(len(probe.tasks)), answer_fn(probe.tasks), pool, cfg)
    out = {}
    for t in probe.types():
        mine = [(a, c) for st, a, c in zip(probe.tasks, answers, correct) if st.task_type == t]
        out[probe.key(f"{t}_acc")] = sum(c for _, c in mine) / len(mine)
        out[probe.key(f"{t}_format_error")] = sum(isinstance(a, sp.FormatError)
                                                  for a, _ in mine) / len(mine)
    out[probe.key("acc")] = sum(correct) / max(1, len(correct))
    return out


def passk_metrics(probe: Probe, sample_fn: SampleFn, pool, cfg: sp.SelfPlayConfig,
                  n: int) -> dict:
    """pass@1 ... pass@n over the probe's tasks from n sampled answers each (unbiased
    estimator, averaged over tasks; a format error is wrong)."""
    texts, task_idx = sample_fn(probe.tasks, n)
    _, correct = _grade(probe, task_idx, texts, pool, cfg)
    tries, hits = [0] * len(probe.tasks), [0] * len(probe.tasks)
    for i, c in zip(task_idx, correct):
        tries[i] += 1
        hits[i] += bool(c)
    if any(t != n for t in tries):
        raise RuntimeError(f"probe {probe.name}: expected {n} samples per task, got {tries}")
    return {probe.key(f"pass@{k}"): sum(pass_at_k(n, c, k) for c in hits) / len(hits)
            for k in range(1, n + 1)}


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


def sampled_answer_fn(ctx, params, seed: int = PASSK_SEED) -> SampleFn:
    """n answers per task from the policy ``params`` at temperature 1 (the run's other
    sampling settings, prompts and prefixes), drawn with one fixed key."""
    import jax

    from azr_jax.pipeline import rollout
    from azr_jax.sampling import prepare_params

    sctx = dataclasses.replace(ctx, sampling=ctx.sampling.replace(temperature=PASSK_TEMPERATURE))

    def sample(tasks, n):
        p = prepare_params(params, sctx.model_cfg, sctx.mesh)
        out = rollout.solve_rollouts(sctx, p, tasks, jax.random.PRNGKey(seed), num_samples=n)
        return out[3], [int(i) for i in out[4]]

    return sample


def from_config(cfg, ctx) -> tuple[Probe, ...]:
    """The run's probes (config section ``probe``: ``every`` steps, ``heldout_file``,
    ``file``), held-out first; () when ``probe.every`` is 0."""
    pcfg = cfg.get("probe")
    if pcfg is None or pcfg.get("every", 0) <= 0:
        return ()
    files = [(name, pcfg.get(key, "")) for name, key in PROBE_FILES]
    if not any(path for _, path in files):
        raise UserError("probe.every > 0 needs a probe file: probe.heldout_file and/or "
                        "probe.file")
    types = list(ctx.selfplay.task_types)
    return tuple(build_probe(ctx.pool, path, ctx.selfplay, types, name=name)
                 for name, path in files if path)


def accuracy_metrics(probes: Sequence[Probe], ctx, params) -> dict:
    """The greedy accuracies of the policy ``params`` on every probe (the trainer logs
    them every ``probe.every`` steps); {} without a probe."""
    out = {}
    for probe in probes:
        out.update(probe_metrics(probe, greedy_answer_fn(ctx, params), ctx.pool, ctx.selfplay))
    return out


def passk_all(probes: Sequence[Probe], cfg, ctx, params) -> dict:
    """pass@1..n on every probe (n = ``probe.passk_samples``; {} when 0)."""
    n = cfg.probe.get("passk_samples", 0)
    if n <= 0:
        return {}
    sample_fn, out = sampled_answer_fn(ctx, params), {}
    for probe in probes:
        out.update(passk_metrics(probe, sample_fn, ctx.pool, ctx.selfplay, n))
    return out


def start_metrics(probes: Sequence[Probe], cfg, ctx, params) -> dict:
    """The step-0 row: the base policy's accuracies and pass@k, before the first update."""
    if not probes:
        return {}
    return {**accuracy_metrics(probes, ctx, params), **passk_all(probes, cfg, ctx, params)}


def step_metrics(probes: Sequence[Probe], cfg, ctx, params, step_metrics: dict,
                 done: int) -> dict:
    """The probes' metrics after update ``done``: the valid-proposal rate every step,
    accuracies every ``probe.every`` steps and after the last, pass@k after the last;
    {} without a probe."""
    if not probes:
        return {}
    out = {"probe/valid_rate": valid_rate(step_metrics)}
    last = done == cfg.trainer.steps
    if done % cfg.probe.every == 0 or last:
        out.update(accuracy_metrics(probes, ctx, params))
    if last:
        out.update(passk_all(probes, cfg, ctx, params))
    return out
