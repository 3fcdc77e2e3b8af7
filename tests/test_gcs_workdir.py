"""A gs:// workdir end to end, against a GCS emulator on localhost (tests/gcs_emulator.py):
configs/tiny_cpu.py trains into gs://bucket/..., with the seeding phase and the probe, is
stopped by SIGTERM after step 1, resumes to step 2, and the run is read back by `azr-jax
report`, `azr-jax eval --model gs://...@STEP` and `azr-jax export-hf --workdir gs://...`.
The 2-process run with a gs:// workdir is tests/test_multihost_trainer.py."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from gcs_emulator import gcs  # noqa: F401 (fixture)

from azr_jax.cli import main as cli_main
from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.metrics import read_metrics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

pytestmark = pytest.mark.slow


def _probe(tmp_path):
    """Identity programs: the worker's scripted solver answers are right on some rows."""
    path = tmp_path / "probe.jsonl"
    rows = [{"program": "def f(x):\n    return x", "inputs": ["'Hello World'", f"'{w}'"],
             "message": "same"} for w in ("hi", "yo")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _train(workdir, records, steps, *extra):
    """tests/trainer_worker.py (what `azr-jax train` runs, with scripted responses)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".cache", "jax"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
    for key in ("AZR_COORDINATOR_ADDRESS", "AZR_NUM_PROCESSES", "AZR_PROCESS_ID"):
        env.pop(key, None)
    cmd = [sys.executable, os.path.join(HERE, "trainer_worker.py"), workdir, str(records),
           str(steps), *extra]
    p = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    return p.returncode, p.stdout


def _steps(rows):
    return [r["step"] for r in rows]


def test_seeding_state_round_trips_through_a_bucket(gcs):  # noqa: F811
    from azr_jax.selfplay import seeding
    from azr_jax.selfplay.buffers import Buffers
    from azr_jax.selfplay.tasks import Triplet

    path = workdir_fs.join(gcs.path("seed"), "seeding_buffers.json")
    buffers = Buffers(["deduction"])
    assert not seeding.load_state(path, buffers)
    buffers.add_tasks([Triplet("def f(x):\n    return x", "1", "1")])
    seeding.save_state(path, buffers)
    seeding.save_state(path, buffers)  # a second round replaces the object
    back = Buffers(["deduction"])
    assert seeding.load_state(path, back) and back.to_dict() == buffers.to_dict()
    assert not workdir_fs.exists(path + ".tmp")


def test_train_preempt_resume_report_eval_export_in_a_bucket(gcs, tmp_path):  # noqa: F811
    wd = gcs.path("run")
    run = ["--distinct", "trainer.steps=2", "selfplay.seed_batch_factor=1", "probe.every=1",
           f"probe.file={_probe(tmp_path)}"]
    rc, out = _train(wd, tmp_path / "rec1", 2, *run, "--sigterm-at-step", "0")
    assert rc == 143 and "PREEMPTED" in out, out[-4000:]
    assert _steps(read_metrics(wd)) == [0, 1]  # the probe's step-0 row, then step 1
    assert workdir_fs.listdir(workdir_fs.join(wd, "checkpoints")) == ["1"]
    # the seeding phase kept its buffers in the bucket (4 tasks per type: batch 4 x factor 1)
    from azr_jax.selfplay.buffers import Buffers

    seeded = Buffers.from_dict(json.loads(workdir_fs.read_text(
        workdir_fs.join(wd, "seeding_buffers.json"))))
    assert min(seeded.sizes().values()) >= 4, seeded.sizes()

    rc, out = _train(wd, tmp_path / "rec2", 2, *run)
    assert rc == 0 and "DONE" in out, out[-4000:]
    gcs.forget_listings()
    with open(tmp_path / "rec2" / "process0.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [1]  # resumed, no second seeding
    rows = read_metrics(wd)
    assert _steps(rows) == [0, 1, 2]
    assert all(np.isfinite(r["loss"]) and "probe/seen/acc" in r for r in rows[1:])
    assert json.loads(workdir_fs.read_text(workdir_fs.join(wd, "config.json")))["trainer"][
        "steps"] == 2
    for log in ("tasks.jsonl", "solves.jsonl"):
        # rows carry the rollout's step index: 0 and 1 for updates 1 and 2
        assert {r["step"] for r in workdir_fs.read_log(workdir_fs.join(wd, log))} == {0, 1}, log
    assert workdir_fs.listdir(workdir_fs.join(wd, "checkpoints")) == ["1", "2"]
    fs, tb = gcs.fs(), wd[len("gs://"):] + "/tb"
    events = [fs.cat(p) for p in fs.ls(tb) if "tfevents" in p]
    assert len(events) == 2 and all(b"loss" in e for e in events)  # one file per run

    assert cli_main(["report", "--workdir", wd]) == 0
    assert "Training curves" in workdir_fs.read_text(workdir_fs.join(wd, "report.html"))

    data = tmp_path / "m.jsonl"
    data.write_text(json.dumps({"problem": "What is 1+1?", "answer": "2"}) + "\n")
    out_json = tmp_path / "eval.json"
    assert cli_main(["eval", "--model", f"{wd}@1", "--suite", "math", "--data", str(data),
                     "--max-new-tokens", "4", "--output", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["model"] == f"{wd}@1"

    from azr_jax.checkpoints import load_model
    from azr_jax.pipeline.workdir_model import load_model_spec

    step1, latest = load_model_spec(f"{wd}@1"), load_model_spec(wd)
    hf = str(tmp_path / "hf")
    assert cli_main(["export-hf", "--workdir", wd, "--output", hf]) == 0
    exported = load_model(hf, progress=False)
    diff = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                        exported.params, latest.params)
    assert max(jax.tree.leaves(diff)) < 1e-6  # step 2's weights, read from the bucket
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                         step1.params, latest.params)
    assert max(jax.tree.leaves(moved)) > 0  # @1 is step 1, not the latest
