"""A step's eval and checkpoint seconds land in that step's metrics row, not the next one's
(they used to go into the shared phase timer after the row was popped)."""

import time

from azr_jax.pipeline import trainer as trainer_mod
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline.metrics import read_metrics

PAUSE = 0.4  # seconds each eval and checkpoint takes here: far above the rest's noise


def test_eval_and_checkpoint_seconds_are_in_their_own_steps_row(tmp_path, monkeypatch):
    real_save = trainer_mod._save

    def slow_evals(cfg, params, env, progress):
        time.sleep(PAUSE)
        return {"fake/score": 1.0}

    def slow_save(*args, **kwargs):
        time.sleep(PAUSE)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "run_evals", slow_evals)
    monkeypatch.setattr(trainer_mod, "_save", slow_save)
    cfg = load_config("tiny_cpu", ["trainer.steps=3", "trainer.eval_every=2",
                                   "trainer.checkpoint_every=2", "trainer.log_every=1",
                                   "eval.suites=humaneval", "selfplay.batch_per_group=2",
                                   "sampling.max_new_tokens=8"])
    workdir = str(tmp_path / "run")
    trainer_mod.train(cfg, workdir)

    rows = {r["step"]: r for r in read_metrics(workdir)}
    assert sorted(rows) == [1, 2, 3]  # the checkpoint rows merged into their steps' rows
    assert "fake/score" in rows[2] and rows[2]["time/eval"] >= PAUSE
    assert "time/eval" not in rows[1] and "time/eval" not in rows[3]
    assert rows[2]["time/checkpoint"] >= PAUSE and rows[3]["time/checkpoint"] >= PAUSE
    assert "time/checkpoint" not in rows[1]
