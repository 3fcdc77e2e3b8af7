"""The AZR training loop: rollouts in a prefetch thread -> jitted sharded updates -> metrics,
checkpoints and automatic resume.

    train(cfg, workdir)   # what `azr-jax train` calls

A workdir holds config.json, metrics.jsonl, tasks.jsonl, tb/ (TensorBoard) and checkpoints/.
Running again on a workdir with a checkpoint resumes from it; the checkpoint holds the train
state (params, optimizer, step, RNG) and the trainer state (buffers, seed).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time

from azr_jax.errors import UserError
from azr_jax.pipeline import config as config_lib
from azr_jax.pipeline import probe as probe_lib
from azr_jax.pipeline import setup as setup_lib
from azr_jax.pipeline.metrics import MetricsWriter, PhaseTimer
from azr_jax.pipeline.prefetch import DeviceActivity, RolloutQueue
from azr_jax.pipeline.rollout import (RolloutContext, run_rollout, seed_buffers,
                                      seeding_state_path)
from azr_jax.pipeline.tasklog import append_tasks, truncate_tasks_after
from azr_jax.sharding import data_parallel_size

CONFIG_FILE = "config.json"


@dataclasses.dataclass
class TrainResult:
    workdir: str
    start_step: int
    end_step: int
    last_metrics: dict


def prepare_workdir(cfg, workdir: str, main: bool) -> bool:
    """Create the workdir or check it holds a compatible run; True when resuming."""
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            try:
                saved = config_lib.config_from_json(f.read())
            except ValueError as e:
                raise UserError(f"{path} is not valid JSON ({e}); is this an azr-jax workdir?")
        config_lib.check_resume_compatible(saved, cfg, workdir)
        exists = True
    else:
        exists = False
    if main:
        os.makedirs(workdir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:  # refresh resume-safe fields (e.g. a longer trainer.steps)
            f.write(config_lib.config_to_json(cfg))
        os.replace(tmp, path)
    return exists


def _os_error(e: BaseException):
    """The OSError behind `e` (Orbax may wrap it), or None."""
    while e is not None:
        if isinstance(e, OSError):
            return e
        e = e.__cause__ or e.__context__
    return None


def _save(ckpt, step, state, trainer_state, workdir, final: bool):
    try:
        ckpt.save(step, state, trainer_state)
        if final:
            ckpt.wait()  # an asynchronous save's error surfaces here, not after exit
    except Exception as e:  # noqa: BLE001 - only disk errors become a UserError
        os_err = _os_error(e)
        if os_err is None:
            raise
        prev = [s for s in ckpt.all_steps() if s < step]
        kept = f"the previous checkpoint (step {max(prev)}) is intact" if prev else \
            "no earlier checkpoint exists"
        why = "no space left on device" if os_err.errno == errno.ENOSPC else str(os_err)
        raise UserError(f"saving the checkpoint of step {step} in {workdir} failed: {why}; "
                        f"{kept}; fix it and rerun the same command to resume") from None


def run_evals(cfg, params, env, progress: bool) -> dict:
    """Every configured eval suite on `params`; metrics keyed "<suite>/<metric>"."""
    from azr_jax.evals.suites import SuiteConfig, run_eval_suite

    e, out = cfg.eval, {}
    data = list(e.data) + [""] * (len(e.suites) - len(e.data))
    for suite, path in zip(e.suites, data):
        scfg = SuiteConfig(suite=suite, data=path or None, limit=e.limit or None,
                           max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                           seed=cfg.trainer.seed)
        out.update(run_eval_suite(params, scfg, model_config=env.model_cfg,
                                  tokenizer=env.tokenizer, progress=progress))
    return out


def _progress(total, initial, enabled):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="azr train", unit="step", dynamic_ncols=True)


def _postfix(m: dict) -> dict:
    keys = {"valid": "valid_rate/", "solve": "solve_rate/"}
    out = {}
    for short, prefix in keys.items():
        vals = [v for k, v in m.items() if k.startswith(prefix)]
        if vals:
            out[short] = f"{sum(vals) / len(vals):.2f}"
    if "loss" in m:
        out["loss"] = f"{m['loss']:.3g}"
    if "device_idle_frac" in m:
        out["idle"] = f"{m['device_idle_frac']:.0%}"
    return out


def train(cfg, workdir: str, *, rollout_fn=run_rollout) -> TrainResult:
    """Run (or resume) training in `workdir` until `cfg.trainer.steps` updates are done."""
    import jax
    import jax.numpy as jnp

    from azr_jax.sharding import is_main_process

    main = is_main_process()
    resuming = prepare_workdir(cfg, workdir, main)
    env = setup_lib.build(cfg, workdir)
    tcfg = cfg.trainer
    state, buffers, start = env.train_state, env.buffers, 0
    if resuming and env.checkpointer.latest_step() is not None:
        start, state, buffers = setup_lib.restore(env)
    writer = MetricsWriter(workdir, enabled=main)
    writer.truncate_after(start)
    if main:
        truncate_tasks_after(workdir, start - 1)
    timer, activity = PhaseTimer(), DeviceActivity()
    ctx = RolloutContext(
        model_cfg=env.model_cfg, tokenizer=env.tokenizer, selfplay=env.selfplay,
        sampling=env.sampling, max_prompt_len=cfg.sampling.max_prompt_len,
        batch_per_group=cfg.selfplay.batch_per_group, prefixes=dict(cfg.prefix),
        estimator=cfg.rl.estimator,
        adv_eps=cfg.rl.adv_eps, seed=tcfg.seed, mesh=env.mesh, pool=env.pool, buffers=buffers,
        activity=activity, timer=timer,
        batch_row_multiple=env.optim.micro_batches * data_parallel_size(env.mesh),
        mini_batch_size=env.optim.mini_batch_size,
        max_rows_per_call=cfg.sampling.max_rows_per_call,
        close_answer=bool(cfg.selfplay.get("close_answer", False)))
    if start == 0 and env.selfplay.seed_buffer_size > 0:
        with timer("seeding"):
            seed_buffers(ctx, state.params, progress=main and tcfg.progress,
                         state_path=seeding_state_path(workdir))
    probe = probe_lib.from_config(cfg, ctx)  # None unless cfg.probe.every > 0
    every = max(1, tcfg.checkpoint_every)
    queue = RolloutQueue(lambda s, p: rollout_fn(ctx, s, p), start, tcfg.steps, tcfg.staleness,
                         is_boundary=lambda s: s % every == 0)

    def publish(params):
        # The update donates `state`; rollouts running beside it (staleness > 0) need their
        # own copy of the parameters they sample with.
        return jax.tree.map(jnp.copy, params) if tcfg.staleness > 0 else params

    versions = {start: publish(state.params)}
    bar = _progress(tcfg.steps, start, main and tcfg.progress)
    last: dict = {}
    try:
        for step in range(start, tcfg.steps):
            t0 = time.perf_counter()
            queue.fill(step, versions)
            with timer("device_wait_host"):
                rollout = queue.get(step)

            def do_update(st=state, batch=rollout.batch):
                new_state, m = env.update(st, batch)
                return new_state, jax.device_get(m)

            with timer("device_update"):
                state, update_metrics = activity.track(do_update)
            done = step + 1
            versions = {v: p for v, p in versions.items() if v >= queue.needed_version(done)}
            versions[done] = publish(state.params)
            t1 = time.perf_counter()
            m = dict(rollout.metrics)
            m.update({k: float(v) for k, v in update_metrics.items()})
            m.update({f"time/{k}": v for k, v in timer.pop().items()})
            m["time/step"] = t1 - t0
            m["device_idle_frac"] = activity.idle_fraction(t0, t1)
            m["tokens_per_s"] = m.get("gen_tokens", 0) / max(m.get("time/rollout", 1e-9), 1e-9)
            if tcfg.eval_every > 0 and cfg.eval.suites and done % tcfg.eval_every == 0:
                with timer("eval"):
                    m.update(run_evals(cfg, state.params, env, progress=False))
            m.update(probe_lib.step_metrics(probe, cfg, ctx, state.params, m, done))
            if main:  # logs first: a kill before the checkpoint lands rolls them back
                append_tasks(workdir, rollout.task_rows)
                if step % max(1, tcfg.log_every) == 0 or done == tcfg.steps:
                    writer.write(done, m)
            if done % every == 0 or done == tcfg.steps:
                with timer("checkpoint"):
                    _save(env.checkpointer, done, state,
                          {"buffers": buffers.to_dict(), "step": done, "seed": tcfg.seed},
                          workdir, final=done == tcfg.steps)
            last = m
            if bar is not None:
                bar.set_postfix(_postfix(m), refresh=False)
                bar.update(1)
    finally:
        queue.close()
        if bar is not None:
            bar.close()
        writer.close()
        env.close()
    return TrainResult(workdir, start, tcfg.steps, last)
