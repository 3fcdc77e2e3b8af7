"""Trainer pieces that need no model: config overrides, resume compatibility, the prefetch
schedule, device-idle accounting, batch packing, metrics and the HTML report."""

import json
import os
import threading
import time

import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.pipeline import config as config_lib
from azr_jax.pipeline.batching import build_batch
from azr_jax.pipeline.metrics import MetricsWriter, read_metrics
from azr_jax.pipeline.prefetch import DeviceActivity, RolloutQueue, policy_version
from azr_jax.pipeline.report import build_report
from azr_jax.pipeline.tasklog import append_tasks, read_tasks, truncate_tasks_after


def test_recipes_load_and_override():
    for name in ("base", "tiny_cpu", "smollm2_demo"):
        assert config_lib.load_config(name).trainer.steps >= 1
    cfg = config_lib.load_config("configs/tiny_cpu.py", [
        "trainer.steps=7", "rl.clip_eps=0.3", "trainer.progress=false",
        "selfplay.task_types=deduction,abduction", "model.preset=smollm2-135m"])
    assert cfg.trainer.steps == 7 and cfg.rl.clip_eps == 0.3 and cfg.trainer.progress is False
    assert tuple(cfg.selfplay.task_types) == ("deduction", "abduction")
    assert cfg.model.preset == "smollm2-135m"


@pytest.mark.parametrize("override,needle", [
    ("trainer.stepz=3", "unknown config key 'trainer.stepz'; did you mean trainer.steps"),
    ("nosuch=1", "unknown config key 'nosuch'"),
    ("trainer.steps=abc", "bad value for config key 'trainer.steps'"),
    ("trainer.progress=maybe", "bad value for config key 'trainer.progress'"),
    ("trainer.steps", "must look like"),
])
def test_bad_overrides(override, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        config_lib.load_config("tiny_cpu", [override])


def test_missing_config_file():
    with pytest.raises(UserError, match="not found"):
        config_lib.load_config("configs/nope.py")


def test_resume_compatibility():
    a = config_lib.load_config("tiny_cpu")
    saved = config_lib.config_from_json(config_lib.config_to_json(a))
    ok = config_lib.load_config("tiny_cpu", ["trainer.steps=9", "executor.workers=3", "mesh.data=1",
                                            "probe.every=2"])
    config_lib.check_resume_compatible(saved, ok, "/w")  # resume-safe changes only
    bad = config_lib.load_config("tiny_cpu", ["model.preset=smollm2-135m", "optim.lr=0.5"])
    with pytest.raises(UserError, match="incompatible config.*model.preset.*optim.lr"):
        config_lib.check_resume_compatible(saved, bad, "/w")
    # a run saved before a setting existed resumes while the setting keeps its no-op default
    older = a.to_dict()
    del older["scaffold"]
    older = config_lib.config_from_json(json.dumps(older))
    config_lib.check_resume_compatible(older, a, "/w")
    a.scaffold.deduction_propose = ("\n```input\n",)
    with pytest.raises(UserError, match="scaffold.deduction_propose"):
        config_lib.check_resume_compatible(older, a, "/w")


def test_policy_version_schedule():
    assert [policy_version(s, 0, 0) for s in range(4)] == [0, 1, 2, 3]
    assert [policy_version(s, 1, 0) for s in range(4)] == [0, 0, 1, 2]
    # at a checkpoint boundary the rollouts wait for the fresh parameters
    assert policy_version(4, 1, 4) == 4


def _drive(staleness, steps, every):
    """Run the queue with a fake update; record (step, version used) and the overlap."""
    log, running = [], {"update": False, "overlap": 0}

    def rollout(step, params):
        time.sleep(0.01)
        running["overlap"] += running["update"]
        log.append((step, params))
        return step

    q = RolloutQueue(rollout, 0, steps, staleness, is_boundary=lambda s: s % every == 0)
    versions = {0: 0}
    for step in range(steps):
        q.fill(step, versions)
        assert q.get(step) == step
        running["update"] = True
        time.sleep(0.03)
        running["update"] = False
        versions[step + 1] = step + 1
    q.close()
    return log, running["overlap"]


def test_rollout_queue_on_policy_and_stale():
    log, overlap = _drive(0, 5, every=100)
    assert log == [(s, s) for s in range(5)] and overlap == 0
    log, overlap = _drive(1, 5, every=100)
    assert log == [(0, 0), (1, 0), (2, 1), (3, 2), (4, 3)] and overlap > 0
    log, _ = _drive(1, 5, every=2)  # checkpoints at 2 and 4 drain the queue
    assert log == [(0, 0), (1, 0), (2, 2), (3, 2), (4, 4)]


def test_device_activity_idle_fraction():
    act = DeviceActivity()
    act.record(0.0, 2.0)
    act.record(1.0, 3.0)  # overlapping intervals count once
    act.record(6.0, 7.0)
    assert act.busy_seconds(0.0, 10.0) == pytest.approx(4.0)
    act.record(0.0, 2.0)
    assert act.idle_fraction(0.0, 4.0) == pytest.approx(0.5)


def test_build_batch_alignment():
    prompts = [[5, 6, 7], [8]]
    responses = [[9, 10], [11, 12, 13]]
    lps = [np.array([-0.5, -0.25], np.float32), np.array([-1.0, -2.0, -3.0], np.float32)]
    b = build_batch(prompts, responses, lps, np.array([1.0, -1.0]), length=8)
    assert b["tokens_bt"][0].tolist() == [0, 0, 0, 5, 6, 7, 9, 10]
    assert b["valid_bt"][1].tolist() == [False] * 4 + [True] * 4
    assert b["loss_mask_bt"][1].tolist() == [0] * 5 + [1] * 3
    assert b["old_logprobs_bt"][0, -2:].tolist() == [-0.5, -0.25]
    assert b["old_logprobs_bt"][1, -3:].tolist() == [-1.0, -2.0, -3.0]
    assert build_batch(prompts, responses, lps, np.zeros(2))["tokens_bt"].shape == (2, 64)
    padded = build_batch(prompts, responses, lps, np.array([1.0, -1.0]), length=8, row_multiple=8)
    assert {k: v.shape[0] for k, v in padded.items()} == dict.fromkeys(padded, 8)
    assert not padded["valid_bt"][2:].any() and not padded["loss_mask_bt"][2:].any()
    assert padded["advantages_b"].tolist() == [1.0, -1.0] + [0.0] * 6
    np.testing.assert_array_equal(padded["tokens_bt"][:2], b["tokens_bt"])


def test_metrics_and_tasks_truncate_on_resume(tmp_path):
    w = MetricsWriter(str(tmp_path))
    for s in (1, 2, 3):
        w.write(s, {"loss": float(s), "reward/deduction_solve": np.float32(0.5)})
    w.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # torn by a kill
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2, 3]
    MetricsWriter(str(tmp_path), tensorboard=False).truncate_after(2)
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2]
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path / "tb"))
    append_tasks(str(tmp_path), [{"step": 0, "type": "deduction"}, {"step": 2, "type": "abduction"}])
    truncate_tasks_after(str(tmp_path), 1)
    assert [t["step"] for t in read_tasks(str(tmp_path))] == [0]
    MetricsWriter(str(tmp_path), enabled=False).write(9, {"x": 1})  # not process 0: no-op
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2]


def test_report_is_self_contained(tmp_path):
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    for s in (1, 2, 3):
        w.write(s, {"reward/deduction_propose": -1.0 + s / 4, "solve_rate/deduction": s / 10,
                    "time/sample": 1.5, "loss": 0.1 * s})
    append_tasks(str(tmp_path), [
        {"step": 0, "type": "deduction", "valid": True, "program": "def f(x):\n    return x<2",
         "input": "3", "output": "False", "solve_rate": 0.5, "reward": 0.5},
        {"step": 1, "type": "induction", "valid": False, "program": "", "input": ["1", "2"],
         "output": "", "error": "format", "solve_rate": None, "reward": -1.0}])
    path = build_report(str(tmp_path))
    text = open(path).read()
    assert "<svg" in text and "Reward per group" in text and "reward/deduction_propose" in text
    assert "return x&lt;2" in text  # escaped program text
    assert 'data-type="induction"' in text and "http" not in text.replace("http://www.w3.org", "")
    with pytest.raises(UserError, match="no metrics"):
        build_report(str(tmp_path / "empty") if os.makedirs(tmp_path / "empty") is None else "")


def test_rollout_samples_through_max_rows_decode_slots():
    """With more rows than `sampling.max_rows_per_call`, a rollout's one sampler call runs
    that many decode slots (continuous batching); rows come back prompt-major, each equal to
    the same rows sampled in one static batch (a row's draws depend only on key and row)."""
    import contextlib
    import types

    import jax

    from azr_jax.models import get_preset, init_params
    from azr_jax.pipeline import rollout
    from azr_jax.sampling import SamplingConfig

    cfg = get_preset("tiny")
    calls = []
    real_sample = rollout.sample

    def counting_sample(params, model_cfg, prompts, key, sampling, mesh=None, budgets=None):
        calls.append((len(prompts) * sampling.num_samples, sampling.max_rows_per_call))
        return real_sample(params, model_cfg, prompts, key, sampling, mesh=mesh, budgets=budgets)

    def ctx(max_rows):
        return types.SimpleNamespace(
            sampling=SamplingConfig(max_new_tokens=4, temperature=1.0, max_rows_per_call=max_rows,
                                    decode_chunk=2),
            model_cfg=cfg, mesh=None, timer=lambda name: contextlib.nullcontext(),
            activity=types.SimpleNamespace(track=lambda fn: fn()))

    prompts = [[1, 5 + i, 9] for i in range(5)]
    params = init_params(cfg, jax.random.PRNGKey(0))
    rollout.sample = counting_sample
    try:
        toks, lps, pidx = rollout._generate(ctx(4), params, prompts, jax.random.PRNGKey(1), num_samples=2)
    finally:
        rollout.sample = real_sample
    assert calls == [(10, 4)]  # one call, 4 slots for 5 prompts x 2 samples
    assert pidx.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(toks) == len(lps) == 10 and all(len(t) == len(lp) for t, lp in zip(toks, lps))
    ref_toks, _, _ = rollout._generate(ctx(0), params, prompts, jax.random.PRNGKey(1), num_samples=2)
    assert toks == ref_toks
