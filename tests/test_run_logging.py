"""What a run logs besides metrics: solver rollouts (solves.jsonl, browsable in the report),
TensorBoard hparams and sample texts, and the optional W&B logger in its offline mode."""

import os

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from azr_jax import selfplay as sp
from azr_jax.errors import UserError
from azr_jax.pipeline import tasklog
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline.metrics import MetricsWriter
from azr_jax.pipeline.report import build_report
from azr_jax.pipeline.setup import preflight
from azr_jax.pipeline.wandb_logger import WandbLogger, run_id

CONFIG = {"model": {"preset": "tiny"}, "optim": {"lr": 0.001}, "eval": {"suites": ["math"]}}
PROPOSALS = [{"step": 0, "type": "deduction", "valid": True, "program": "def f(x):\n    return x",
              "input": "1", "output": "1", "reward": 0.5, "response": "<answer>..</answer>"}]


def _solves():
    cfg = sp.SelfPlayConfig()
    task = sp.Triplet(program="def f(x):\n    return x + 1", input="1", output="2")
    st = sp.solver_task("deduction", task, cfg)
    answers = ["2", sp.FormatError("no <answer> tag")]
    return tasklog.solver_rows(0, [st, st], ["<answer>2</answer>", "I think 3"], answers,
                               [sp.PASSED, sp.FORMAT_ERROR], [1.0, -1.0])


def test_solver_rows_hold_prompt_answer_and_grade():
    ok, bad = _solves()
    assert ok["type"] == "deduction" and "return x + 1" in ok["prompt"]
    assert (ok["answer"], ok["outcome"], ok["reward"]) == ("2", "passed", 1.0)
    assert (bad["answer"], bad["error"], bad["outcome"]) == ("", "no <answer> tag", "format_error")
    assert bad["response"] == "I think 3"
    assert ok["task"] == {"program": "def f(x):\n    return x + 1", "input": "1", "output": "2"}


def test_solver_rollouts_are_logged_truncated_and_browsable(tmp_path):
    work = str(tmp_path)
    MetricsWriter(work, tensorboard=False).write(1, {"loss": 0.5})
    tasklog.append_tasks(work, PROPOSALS)
    tasklog.append_solves(work, _solves() + [dict(_solves()[0], step=3)])
    tasklog.truncate_tasks_after(work, 2)  # a resume from step 2 drops later rollouts too
    assert [s["step"] for s in tasklog.read_solves(work)] == [0, 0]
    html = open(build_report(work)).read()
    assert "<h2>Solver rollouts</h2>" in html and 'id="solves"' in html
    assert 'data-f="format_error"' in html and "no &lt;answer&gt; tag" in html
    assert "2 solver\nrollouts, 1 correct" in html
    assert '<option value="format_error">' in html  # the outcome filter


def test_tensorboard_gets_hparams_and_sample_texts(tmp_path):
    w = MetricsWriter(str(tmp_path), samples=1)
    w.write_config(CONFIG)
    w.write(1, {"loss": 0.5})
    w.write_samples(1, PROPOSALS * 3, _solves())
    w.close()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()
    assert {f"{t}/text_summary" for t in ("config", "samples/propose", "samples/solve")} \
        <= set(tags["tensors"])
    hparams = events.PluginTagToContent("hparams")  # TensorBoard's HParams tab
    assert "_hparams_/experiment" in hparams and b"optim.lr" in hparams["_hparams_/session_start_info"]
    (solve,) = events.Tensors("samples/solve/text_summary")
    text = solve.tensor_proto.string_val[0].decode()
    assert "**outcome**: passed" in text and "I think 3" not in text  # samples=1: the first only
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"lr": 0.001' in config_text


def test_wandb_logger_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    work = tmp_path / "run"
    work.mkdir()
    logger = WandbLogger(str(work), "azr-test", "offline")
    w = MetricsWriter(str(work), tensorboard=False, extra=logger, samples=1)
    w.write_config(CONFIG)
    w.write(1, {"loss": 0.5, "solve_rate/deduction": 0.25})
    w.write_samples(1, PROPOSALS, _solves())
    assert logger.run.config["optim"]["lr"] == 0.001
    w.close()
    (offline,) = [d for d in os.listdir(work / "wandb") if d.startswith("offline-run-")]
    (record,) = (work / "wandb" / offline).glob("run-*.wandb")  # what `wandb sync` uploads
    data = record.read_bytes()  # protobuf records; keys and JSON values are plain bytes
    assert b"\x04loss" in data and b"solve_rate/deduction" in data and b"0.25" in data
    assert b"samples/solve" in data and b"table-file" in data and b"optim" in data
    assert offline.endswith(run_id(str(work)))  # a resumed run continues the same W&B run


def test_wandb_settings_are_checked_before_the_workdir(monkeypatch):
    cfg = load_config("tiny_cpu", ["logging.wandb=true", "logging.wandb_mode=sometimes"])
    with pytest.raises(UserError, match="wandb_mode='sometimes' is not one of online"):
        preflight(cfg, 8)
    assert load_config("tiny_cpu").logging.wandb is False  # off by default
