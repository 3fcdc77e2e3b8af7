"""One step's rollouts on the host: propose -> validate -> learnability -> solve -> grade ->
rewards -> advantages -> the padded update batch. Runs in the prefetch thread.

Everything random comes from (seed, step): the sampler key is `fold_in(PRNGKey(seed), step)`
and buffer sampling uses `np.random.default_rng([seed, step])`, so a resumed run repeats an
uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np

from azr_jax import selfplay as sp
from azr_jax.selfplay import diversity
from azr_jax.sampling import SamplingConfig, prepare_params, sample
from azr_jax.pipeline import answer_stop, scaffold, tasklog, workdir_fs
from azr_jax.pipeline.batching import advantages_and_batch
from azr_jax.pipeline.workdir_layout import SEEDING_FILE


@dataclasses.dataclass
class RolloutContext:
    """What rollouts need besides the parameters; built once by the trainer."""

    model_cfg: Any  # azr_jax.models.ModelConfig
    tokenizer: Any
    selfplay: sp.SelfPlayConfig
    sampling: SamplingConfig
    max_prompt_len: int
    batch_per_group: int
    prefixes: dict  # "{type}_{role}" -> text the assistant turn starts with
    estimator: str
    adv_eps: float
    seed: int
    mesh: Any
    pool: Any  # azr_jax.executor pool
    buffers: sp.Buffers
    activity: Any  # prefetch.DeviceActivity
    timer: Any  # metrics.PhaseTimer
    batch_row_multiple: int = 1  # the update step splits rows over micro-batches x data devices
    mini_batch_size: int = 0  # sequences per optimizer step (OptimConfig.mini_batch_size)
    loss_micro_rows: int = 0  # rows balanced into the loss's micro-batches (LossConfig.micro_rows)
    close_answer: bool = False  # small-model lever (selfplay.close_answer): answer_stop.py
    scaffold: dict = dataclasses.field(default_factory=dict)  # lever: pipeline/scaffold.py
    copies: Any = None  # diversity.CopyIndex: the buffers' (and seeds') programs, normalized


def make_context(cfg, env, buffers, activity, timer, data_parallel: int = 1) -> RolloutContext:
    """The context a run's config and built environment (pipeline.setup.Env) give; the
    trainer and the benchmarks build it here so that a new field reaches both."""
    return RolloutContext(
        model_cfg=env.model_cfg, tokenizer=env.tokenizer, selfplay=env.selfplay,
        sampling=env.sampling, max_prompt_len=cfg.sampling.max_prompt_len,
        batch_per_group=cfg.selfplay.batch_per_group, prefixes=dict(cfg.prefix),
        estimator=cfg.rl.estimator, adv_eps=cfg.rl.adv_eps, seed=cfg.trainer.seed,
        mesh=env.mesh, pool=env.pool, buffers=buffers, activity=activity, timer=timer,
        batch_row_multiple=env.optim.micro_batches * data_parallel,
        mini_batch_size=env.optim.mini_batch_size, close_answer=cfg.selfplay.close_answer,
        loss_micro_rows=cfg.rl.get("micro_rows", 0),
        scaffold={k: tuple(v) for k, v in cfg.get("scaffold", {}).items() if v},
        copies=diversity.CopyIndex(seed_sizes(env.selfplay, env.buffers)))


def seed_sizes(selfplay, fresh_buffers) -> dict[str, int]:
    """How many tasks at the head of each buffer are seeds: the seeding phase's target,
    else what the run's fresh buffers (identity + seed file) hold; a resumed run's buffers
    start with the same tasks."""
    return {t: selfplay.seed_buffer_size or len(fresh_buffers[t]) for t in selfplay.task_types}


@dataclasses.dataclass
class Rollout:
    step: int
    batch: dict  # numpy arrays, the update step's batch keys
    metrics: dict
    task_rows: list  # proposals for tasks.jsonl
    solve_rows: list = dataclasses.field(default_factory=list)  # solver rollouts, solves.jsonl


def _render(ctx: RolloutContext, messages) -> str:
    chat = lambda m: ctx.tokenizer.apply_chat_template(m, add_generation_prompt=True)  # noqa: E731
    return sp.render_messages(messages, chat, ctx.selfplay)


def _encode(ctx: RolloutContext, messages, prefix: str = "") -> list[int]:
    """Prompt tokens, never cut: a prompt over the limit is re-drawn by its builder."""
    return ctx.tokenizer.encode(_render(ctx, messages) + prefix, add_special_tokens=False)


def _fits(ctx: RolloutContext, task_type: str, role: str):
    """Whether a prompt (messages) of this type and role fits ``max_prompt_len``."""
    prefix = _prefix(ctx, task_type, role)
    return lambda messages: len(_encode(ctx, messages, prefix)) <= ctx.max_prompt_len


def _generate(ctx, params, prompts, key, num_samples=1, budgets=None):
    """Sample; returns (responses [R] token lists, logprobs [R] arrays, prompt_index [R]).

    One sampler call: with more rows (prompts x num_samples) than
    `sampling.max_rows_per_call`, that many decode slots take the rows in turn (continuous
    batching); the slot count is what bounds rollout memory (the KV cache) on large models."""
    cfg = ctx.sampling.replace(num_samples=num_samples)
    with ctx.timer("sample"):
        out = ctx.activity.track(lambda: sample(params, ctx.model_cfg, prompts, key, cfg,
                                                mesh=ctx.mesh, budgets=budgets))
    rows = range(len(out.lengths))
    toks = [out.row_tokens(r) for r in rows]
    lps = [out.logprobs[r, : out.lengths[r]].astype(np.float32) for r in rows]
    return toks, lps, out.prompt_index


def _decode(ctx, token_lists, prefixes):
    """Whole assistant turns: what the prompt opened them with (``<think>`` in the R1
    format, then the configured prefix) + the sampled text; the parsers read these."""
    start = sp.response_start(ctx.selfplay)
    texts = [ctx.tokenizer.decode(t, skip_special_tokens=True) for t in token_lists]
    turns = [start + p + t for p, t in zip(prefixes, texts)]
    return [answer_stop.close_answer(x) for x in turns] if ctx.close_answer else turns


def _stop(ctx, toks, lps, prefixes, types, role):
    """The close_answer lever's cut (answer_stop.py); identity when it is off."""
    if not ctx.close_answer:
        return toks, lps
    decode = lambda t: ctx.tokenizer.decode(t, skip_special_tokens=True)  # noqa: E731
    needs = [answer_stop.fences_needed(t, role, ctx.selfplay.num_inputs) for t in types]
    return answer_stop.cut_responses(decode, toks, lps, prefixes, needs)


def propose_rollouts(ctx, params, requests, key):
    """Proposer rollouts of ``requests``: (prompt tokens, response tokens, log-probs, whole
    turns as text), with the scaffold and close_answer levers when configured."""
    types = [r.task_type for r in requests]
    with ctx.timer("host_prompts"):
        pre = [_prefix(ctx, t, "propose") for t in types]
        prompts = [_encode(ctx, r.messages, p) for r, p in zip(requests, pre)]
    scaffolds = scaffold.for_rows(ctx.scaffold, [f"{t}_propose" for t in types])
    if any(scaffolds):
        decode = lambda t: ctx.tokenizer.decode(t, skip_special_tokens=True)  # noqa: E731
        encode = lambda s: ctx.tokenizer.encode(s, add_special_tokens=False)  # noqa: E731

        def generate(p, k, budgets):
            return _generate(ctx, params, p, k, budgets=budgets)[:2]

        toks, lps = scaffold.scaffolded(generate, decode, encode, prompts, pre, scaffolds, key,
                                        ctx.sampling.max_new_tokens)
    else:
        toks, lps, _ = _generate(ctx, params, prompts, key)
    toks, lps = _stop(ctx, toks, lps, pre, types, "propose")
    return prompts, toks, lps, _decode(ctx, toks, pre)


def solve_rollouts(ctx, params, tasks, key, num_samples=1):
    """Solver rollouts of ``tasks`` (sp.SolverTask), each ``num_samples`` times (task-major):
    (prompt tokens per task, response tokens, log-probs, whole turns as text, the task index
    of each response), with the close_answer lever when configured."""
    with ctx.timer("host_prompts"):
        pre = [sp.solve_prefix(_prefix(ctx, st.task_type, "solve"), st.task_type, st.task)
               for st in tasks]
        prompts = [_encode(ctx, st.messages, p) for st, p in zip(tasks, pre)]
    toks, lps, pidx = _generate(ctx, params, prompts, key, num_samples=num_samples)
    row_pre = [pre[p] for p in pidx]
    toks, lps = _stop(ctx, toks, lps, row_pre, [tasks[p].task_type for p in pidx], "solve")
    return prompts, toks, lps, _decode(ctx, toks, row_pre), pidx


def _prefix(ctx, task_type, role) -> str:
    return ctx.prefixes.get(f"{task_type}_{role}", "")



def seeding_state_path(workdir: str) -> str:
    """Where the seeding phase keeps its buffers between rounds (single-process runs; on a
    pod every host must see the same state at once, so seeding restarts there instead)."""
    return workdir_fs.join(workdir, SEEDING_FILE) if jax.process_count() == 1 else ""


def seed_buffers(ctx: RolloutContext, params, progress: bool, state_path: str = "") -> dict:
    """The seeding phase (selfplay.seed_batch_factor > 0) with the initial policy; with
    ``state_path`` it survives a restart (see selfplay.seeding)."""
    counter = [0]
    params = prepare_params(params, ctx.model_cfg, ctx.mesh)  # one decode layout for all calls

    def propose(requests):
        key = jax.random.fold_in(jax.random.PRNGKey(ctx.seed), 2**31 + counter[0])  # != steps
        counter[0] += 1
        return propose_rollouts(ctx, params, requests, key)[3]

    # one length check for all types: the propose prefixes differ only by type
    fits = lambda m: all(_fits(ctx, t, "propose")(m) for t in ctx.selfplay.task_types)  # noqa
    return sp.seed_buffers(ctx.pool, ctx.buffers, propose, ctx.selfplay,
                           np.random.default_rng([ctx.seed, 2**31]), progress=progress,
                           state_path=state_path, fits=fits)


def _task_row(step, result, rate, reward, response):
    task = result.task
    row = {"step": step, "type": result.request.task_type, "valid": result.outcome == sp.PASSED,
           "formatted": result.formatted, "outcome": result.outcome, "error": result.reason,
           "reward": round(float(reward), 4),
           "solve_rate": rate, "response": response[:2000]}
    parsed = result.parsed
    if task is not None:  # the type says which of its task's fields a row shows
        row.update(sp.registry.get(result.request.task_type).log_fields(task))
    elif isinstance(parsed, sp.Proposal):
        row.update(program=parsed.program or result.request.program, input=list(parsed.inputs),
                   output="")
    else:
        row.update(program="", input="", output="")
    return row


def run_rollout(ctx: RolloutContext, step: int, params) -> Rollout:
    """All host and sampling work of one training step (see the module docstring)."""
    t_start = time.perf_counter()
    params = prepare_params(params, ctx.model_cfg, ctx.mesh)  # freed when the step's rollout ends
    cfg, B = ctx.selfplay, ctx.batch_per_group
    rng = np.random.default_rng([ctx.seed, step])
    key = jax.random.fold_in(jax.random.PRNGKey(ctx.seed), step)
    k_prop, k_learn, k_solve = jax.random.split(key, 3)
    types = list(cfg.task_types)

    # 1. propose (a prompt over the length limit is re-drawn with other references)
    with ctx.timer("host_prompts"):
        requests = [r for t in types for r in sp.proposer_requests(
            t, ctx.buffers, B, rng, cfg, fits=_fits(ctx, t, "propose"))]
    prop_prompts, prop_toks, prop_lps, prop_texts = propose_rollouts(ctx, params, requests,
                                                                     k_prop)

    # 2. validate in the executor, then admit (selfplay.admission; official: every valid
    #    task): a refused proposal is an invalid one from here on
    with ctx.timer("execute"):
        validated = sp.validate_proposals(ctx.pool, requests, prop_texts, cfg)
    with ctx.timer("diversity"):
        if ctx.copies is None:
            ctx.copies = diversity.CopyIndex()
        ctx.copies.sync(ctx.buffers)  # the buffers as the step's proposals saw them
        results = diversity.admit(validated, cfg.admission, ctx.copies)

    # 3. learnability: n solver rollouts per admitted proposal
    rates, learn_answers = _learnability(ctx, params, results, k_learn)
    bonuses = diversity.novelty_bonuses(results, ctx.copies, cfg.novelty_bonus)
    prop_rewards = [sp.proposer_composite(r.reward_outcome, rates.get(i), cfg)
                    + bonuses.get(i, 0.0) for i, r in enumerate(results)]

    # 4. solver batch per type: the previous step's new tasks first, the rest from the
    #    buffer (official max_new); then this step's valid tasks join the buffers
    with ctx.timer("host_prompts"):
        solver_tasks = []
        for t in types:
            solver_fits = _fits(ctx, t, "solve")
            tasks = sp.fill_tasks(t, ctx.buffers, B, rng,
                                  fits=lambda task: solver_fits(sp.solver_task(t, task, cfg).messages))
            solver_tasks += [sp.solver_task(t, task, cfg) for task in tasks]
        new_tasks = sp.add_valid(ctx.buffers, results)
    solve_prompts, sol_toks, sol_lps, sol_texts, _ = solve_rollouts(ctx, params, solver_tasks,
                                                                    k_solve)
    with ctx.timer("execute"):
        answers = [sp.parse_answer(st.task_type, t) for st, t in zip(solver_tasks, sol_texts)]
        correct = sp.grade_answers(ctx.pool, solver_tasks, answers, cfg)
        outcomes = sp.answer_outcomes(answers, correct)
    sol_rewards = [sp.solver_composite(o, cfg) for o in outcomes]

    # 5. rewards -> advantages over the 6 (type x role) groups -> batch (the response token
    #    lists carry each sample's length, the prompt token lists identify its prompt)
    with ctx.timer("host_batch"):
        roles = ([(r.request.task_type, "propose") for r in results]
                 + [(st.task_type, "solve") for st in solver_tasks])
        groups = [sp.group_id(t, role) for t, role in roles]
        rewards = np.asarray(prop_rewards + sol_rewards, np.float32)
        advantages, batch = advantages_and_batch(
            prop_prompts + solve_prompts, prop_toks + sol_toks, prop_lps + sol_lps, rewards,
            groups, estimator=ctx.estimator, eps=ctx.adv_eps,
            row_multiple=ctx.batch_row_multiple, mini_batch_size=ctx.mini_batch_size,
            row_order=[sp.update_rank(t, role) for t, role in roles],  # the official order
            micro_rows=ctx.loss_micro_rows)
        # valid_rate: the executor's verdict; a refused copy shows in diversity/ metrics
        metrics = _metrics(types, validated, rates, solver_tasks, outcomes, rewards, advantages,
                           groups, prop_toks, sol_toks, ctx.buffers, new_tasks)
        rows = [_task_row(step, r, rates.get(i), prop_rewards[i], prop_texts[i])
                for i, r in enumerate(results)]
    with ctx.timer("diversity"):
        metrics.update(diversity.step_metrics(validated, learn_answers, ctx.copies))
    metrics["time/rollout"] = time.perf_counter() - t_start
    return Rollout(step=step, batch=batch, metrics=metrics, task_rows=rows,
                   solve_rows=tasklog.solver_rows(step, solver_tasks, sol_texts, answers,
                                                  outcomes, sol_rewards))


def _learnability(ctx, params, results, key) -> tuple[dict[int, float], dict[int, list]]:
    """Solve rate of each valid proposal from ``num_rollouts`` solver samples (not trained),
    and those samples' parsed answers (for the answer entropy). A valid task counts whatever
    its proposal's format; the samples are read from their last ``<answer>`` with no format
    check (reward_managers.py, "Estimating Accuracy")."""
    cfg = ctx.selfplay
    valid_idx = [i for i, r in enumerate(results) if r.outcome == sp.PASSED]
    if not valid_idx:
        return {}, {}
    stasks = [sp.solver_task(results[i].request.task_type, results[i].task, cfg)
              for i in valid_idx]
    _, _, _, texts, pidx = solve_rollouts(ctx, params, stasks, key, num_samples=cfg.num_rollouts)
    with ctx.timer("execute"):
        answers = [sp.parse_answer(stasks[p].task_type, t, check_format=False)
                   for p, t in zip(pidx, texts)]
        correct = sp.grade_answers(ctx.pool, [stasks[p] for p in pidx], answers, cfg)
    rates = {i: sp.solve_rate([c for c, p in zip(correct, pidx) if p == j])
             for j, i in enumerate(valid_idx)}
    return rates, {i: [a for a, p in zip(answers, pidx) if p == j]
                   for j, i in enumerate(valid_idx)}


def _mean(xs):
    return float(np.mean(xs)) if len(xs) else 0.0


def _metrics(types, results, rates, solver_tasks, outcomes, rewards, advantages, groups,
             prop_toks, sol_toks, buffers, new_tasks) -> dict:
    m: dict[str, float] = {"new_tasks": new_tasks}
    groups = np.asarray(groups)
    for t in types:
        for role in sp.ROLES:
            g = groups == sp.group_id(t, role)
            m[f"reward/{t}_{role}"] = _mean(rewards[g])
            m[f"adv_mean/{t}_{role}"] = _mean(advantages[g])
            m[f"adv_std/{t}_{role}"] = float(np.std(advantages[g])) if g.any() else 0.0
        mine = [r for r in results if r.request.task_type == t]
        m[f"valid_rate/{t}"] = _mean([r.outcome == sp.PASSED for r in mine])
        m[f"format_error/{t}_propose"] = _mean([r.reward_outcome == sp.FORMAT_ERROR
                                                for r in mine])
        o = [oc for st, oc in zip(solver_tasks, outcomes) if st.task_type == t]
        m[f"solve_rate/{t}"] = _mean([x == sp.PASSED for x in o])
        m[f"format_error/{t}_solve"] = _mean([x == sp.FORMAT_ERROR for x in o])
        lr = [rates[i] for i, r in enumerate(results) if i in rates and r.request.task_type == t]
        m[f"learnability_rate/{t}"] = _mean(lr)
        m[f"buffer/{t}"] = len(buffers[t])
    m["response_len/propose"] = _mean([len(x) for x in prop_toks])
    m["response_len/solve"] = _mean([len(x) for x in sol_toks])
    m["gen_tokens"] = int(sum(len(x) for x in prop_toks) + sum(len(x) for x in sol_toks))
    return m
