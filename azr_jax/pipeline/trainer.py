"""The AZR training loop: rollouts in a prefetch thread -> jitted sharded updates -> metrics,
checkpoints and automatic resume.

    train(cfg, workdir)   # what `azr-jax train` calls

A workdir holds config.json, metrics.jsonl, tasks.jsonl, solves.jsonl, tb/ (TensorBoard) and
checkpoints/ (workdir_layout.py).
Running again on a workdir with a checkpoint resumes from it; the checkpoint holds the train
state (params, optimizer, step) and the trainer state (buffers, seed).
"""

from __future__ import annotations

import dataclasses
import errno
import time

import jax
import jax.numpy as jnp
from tqdm import tqdm

from azr_jax.errors import UserError
from azr_jax.pipeline import config as config_lib
from azr_jax.pipeline import preemption
from azr_jax.pipeline import probe as probe_lib
from azr_jax.pipeline import setup as setup_lib
from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.host_exec import for_processes
from azr_jax.pipeline.metrics import MetricsWriter, PhaseTimer
from azr_jax.pipeline.wandb_logger import WandbLogger
from azr_jax.pipeline.prefetch import DeviceActivity, RolloutQueue
from azr_jax.pipeline.rollout import (make_context, run_rollout, seed_buffers,
                                      seeding_state_path)
from azr_jax.pipeline.run_guard import close_all, disk_error, guarded_run
from azr_jax.pipeline.tasklog import append_solves, append_tasks, truncate_tasks_after
from azr_jax.sharding import (data_parallel_size, global_batch_from_host, is_main_process,
                              sync_processes)
from azr_jax.pipeline.workdir_layout import CONFIG_FILE


@dataclasses.dataclass
class TrainResult:
    workdir: str
    start_step: int
    end_step: int
    last_metrics: dict


def check_workdir(cfg, workdir: str) -> bool:
    """True when `workdir` holds a run that `cfg` may resume (raises when it holds an
    incompatible one); reads only, so a run that fails before `write_config` leaves no
    config.json that would refuse the corrected command."""
    path = workdir_fs.join(workdir, CONFIG_FILE)
    if not workdir_fs.exists(path):
        return False
    try:
        saved = config_lib.config_from_json(workdir_fs.read_text(path))
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); is this an azr-jax workdir?")
    config_lib.check_resume_compatible(saved, cfg, workdir)
    return True


def write_config(cfg, workdir: str) -> None:
    """Create the workdir and (re)write config.json: a new run's, or a resumed run's
    refreshed resume-safe fields (e.g. a longer trainer.steps)."""
    workdir_fs.makedirs(workdir)
    workdir_fs.write_text_atomic(workdir_fs.join(workdir, CONFIG_FILE),
                                 config_lib.config_to_json(cfg))


def make_writer(cfg, workdir: str, main: bool) -> MetricsWriter:
    """metrics.jsonl + TensorBoard on process 0, plus W&B when `logging.wandb` is on."""
    log = cfg.logging
    extra = None
    if main and log.wandb:
        extra = WandbLogger(workdir, log.wandb_project, log.wandb_mode, log.wandb_name)
    return MetricsWriter(workdir, enabled=main, extra=extra, samples=log.tb_samples)


def _save(ckpt, step, state, trainer_state, workdir, final: bool):
    try:
        ckpt.save(step, state, trainer_state)
        if final:
            ckpt.wait()  # an asynchronous save's error surfaces here, not after exit
    except Exception as e:  # noqa: BLE001 - only disk errors become a UserError
        os_err = disk_error(e)
        if os_err is None:
            raise
        prev = [s for s in ckpt.all_steps() if s < step]
        kept = f"the previous checkpoint (step {max(prev)}) is intact" if prev else \
            "no earlier checkpoint exists"
        why = "no space left on device" if os_err.errno == errno.ENOSPC else \
            (os_err.strerror or str(os_err))
        raise UserError(f"saving the checkpoint of step {step} in {workdir} failed: {why}; "
                        f"{kept}; fix it and rerun the same command to resume") from None


def run_evals(cfg, params, env, progress: bool) -> dict:
    """Every configured eval suite on `params`; metrics keyed "<suite>/<metric>". Every
    process samples (one SPMD program); the programs are graded in shares, one per host."""
    from azr_jax.evals.suites import SuiteConfig, run_eval_suite

    e, out = cfg.eval, {}
    data = list(e.data) + [""] * (len(e.suites) - len(e.data))
    for suite, path in zip(e.suites, data):
        scfg = SuiteConfig(suite=suite, data=path or None, limit=e.limit or None,
                           max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                           seed=cfg.trainer.seed)
        out.update(run_eval_suite(params, scfg, model_config=env.model_cfg,
                                  tokenizer=env.tokenizer, progress=progress,
                                  selfplay=env.selfplay,  # azr style: the run's prompts
                                  wrap_pool=for_processes))
    return out


def _progress(total, initial, enabled):
    if not enabled:
        return None
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


@guarded_run  # workdir lock, SIGTERM -> stop at a step boundary, one-line disk errors
def train(cfg, workdir: str, *, rollout_fn=run_rollout) -> TrainResult:
    """Run (or resume) training in `workdir` until `cfg.trainer.steps` updates are done.

    On SIGTERM it finishes the current step, saves it and raises `Preempted`."""
    main, multi = is_main_process(), jax.process_count() > 1
    resuming = check_workdir(cfg, workdir)
    env = setup_lib.build(cfg, workdir)  # the model loads, so it can fail: config.json waits
    try:  # until the loop's `finally` owns the closers, a failure here (a full disk on
        # config.json or the logs) must still close the pool and the checkpointer
        if main:
            write_config(cfg, workdir)
        sync_processes("azr-workdir-ready")  # the others go on once process 0 wrote config.json
        tcfg = cfg.trainer
        state, buffers, start = env.train_state, env.buffers, 0
        if resuming and env.checkpointer.latest_step() is not None:
            start, state, buffers = setup_lib.restore(env)
        writer = make_writer(cfg, workdir, main)
        writer.truncate_after(start if start else -1)  # a fresh run rewrites its step-0 row
        writer.write_config(cfg.to_dict())
        if main:
            truncate_tasks_after(workdir, start - 1)
        timer, activity = PhaseTimer(), DeviceActivity()
        ctx = make_context(cfg, env, buffers, activity, timer, data_parallel_size(env.mesh))
        if start == 0 and env.selfplay.seed_buffer_size > 0:
            with timer("seeding"):
                seed_buffers(ctx, state.params, progress=main and tcfg.progress,
                             state_path=seeding_state_path(workdir))
        probes = probe_lib.from_config(cfg, ctx)  # () unless cfg.probe.every > 0
        if start == 0 and probes:  # every process samples; the main one logs
            t_probe = time.perf_counter()
            base = probe_lib.start_metrics(probes, cfg, ctx, state.params)
            if main:
                writer.write(0, {**base, "time/probe": time.perf_counter() - t_probe})
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
    except BaseException:
        env.close()
        raise
    try:
        for step in range(start, tcfg.steps):
            t0 = time.perf_counter()
            queue.fill(step, versions)
            with timer("device_wait_host"):
                rollout = queue.get(step)

            batch = rollout.batch  # identical on every host; each places its rows
            if multi:
                batch = global_batch_from_host(batch, env.mesh)

            def old_logprobs(params=versions[queue.needed_version(step)], batch=batch):
                # the parameters this step's rollout sampled with (official: recomputed
                # right after generation); a no-op for rl.old_logprobs=sampler
                batch, m = env.update.old_logprobs(params, batch)
                return jax.block_until_ready(batch), jax.device_get(m)

            def do_update(st=state, batch=batch):
                new_state, m = env.update(st, batch)
                return new_state, jax.device_get(m)

            with timer("old_logprobs"):
                batch, old_metrics = activity.track(old_logprobs)
            with timer("device_update"):
                state, update_metrics = activity.track(do_update, batch=batch)
            done = step + 1
            versions = {v: p for v, p in versions.items() if v >= queue.needed_version(done)}
            versions[done] = publish(state.params)
            t1 = time.perf_counter()
            m = dict(rollout.metrics)
            m.update({k: float(v) for k, v in {**old_metrics, **update_metrics}.items()})
            m.update({f"time/{k}": v for k, v in timer.pop().items()})
            m["time/step"] = t1 - t0
            m["device_idle_frac"] = activity.idle_fraction(t0, t1)
            m["tokens_per_s"] = m.get("gen_tokens", 0) / max(m.get("time/rollout", 1e-9), 1e-9)
            # eval and checkpoint seconds are this step's own (not the shared timer, which the
            # next step pops): eval's in the row, the checkpoint's in a row after it
            if tcfg.eval_every > 0 and cfg.eval.suites and done % tcfg.eval_every == 0:
                t_eval = time.perf_counter()
                m.update(run_evals(cfg, state.params, env, progress=False))
                m["time/eval"] = time.perf_counter() - t_eval
            t_probe = time.perf_counter()  # the probes' own seconds, as eval's above
            m.update(probe_lib.step_metrics(probes, cfg, ctx, state.params, m, done))
            if probes:
                m["time/probe"] = time.perf_counter() - t_probe
            logged = step % max(1, tcfg.log_every) == 0 or done == tcfg.steps
            if main:  # logs first: a kill before the checkpoint lands rolls them back
                append_tasks(workdir, rollout.task_rows)
                append_solves(workdir, rollout.solve_rows)
                if logged:
                    writer.write(done, m)
                    writer.write_samples(done, rollout.task_rows, rollout.solve_rows)
            stop = done < tcfg.steps and preemption.should_stop()  # same on every process
            if done % every == 0 or done == tcfg.steps or stop:
                t_save = time.perf_counter()
                _save(env.checkpointer, done, state,
                      {"buffers": buffers.to_dict(), "step": done, "seed": tcfg.seed},
                      workdir, final=done == tcfg.steps or stop)
                if main and logged:  # read_metrics merges it into the step's row
                    writer.write(done, {"time/checkpoint": time.perf_counter() - t_save})
            if stop:
                raise preemption.Preempted(done, workdir)
            last = m
            if bar is not None:
                bar.set_postfix(_postfix(m), refresh=False)
                bar.update(1)
    finally:  # every closer runs even when one fails (a full disk fails the log flush)
        close_all(queue.close, bar.close if bar is not None else None, writer.close, env.close)
    return TrainResult(workdir, start, tcfg.steps, last)
