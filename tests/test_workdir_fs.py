"""Workdir I/O through etils.epath: local paths keep append + fsync; the bucket branch
(gs://, no appends) is exercised on local paths by declaring them remote."""

import pytest

from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.metrics import MetricsWriter, read_metrics
from azr_jax.pipeline.tasklog import append_tasks, read_tasks, truncate_tasks_after


@pytest.fixture(params=["local", "bucket"])
def mode(request, monkeypatch):
    if request.param == "bucket":
        monkeypatch.setattr(workdir_fs, "is_remote", lambda path: True)
    return request.param


def test_logs_append_read_and_truncate(tmp_path, mode):
    workdir = str(tmp_path / "run")
    workdir_fs.makedirs(workdir)
    writer = MetricsWriter(workdir, tensorboard=False)
    for step in (1, 2, 3):
        writer.write(step, {"loss": step / 2})
    append_tasks(workdir, [{"step": 1, "program": "a"}, {"step": 3, "program": "b"}])
    append_tasks(workdir, [{"step": 4, "program": "c"}])
    assert [r["loss"] for r in read_metrics(workdir)] == [0.5, 1.0, 1.5]
    writer.truncate_after(2)
    truncate_tasks_after(workdir, 3)
    assert [r["step"] for r in read_metrics(workdir)] == [1, 2]
    assert [t["program"] for t in read_tasks(workdir)] == ["a", "b"]
    assert not (tmp_path / "run" / "metrics.jsonl.tmp").exists()


def test_a_torn_last_line_is_skipped(tmp_path, mode):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "pro')
    assert workdir_fs.read_log(str(path)) == [{"step": 1}]


def test_bucket_uris_stay_uris():
    assert workdir_fs.is_remote("gs://bucket/run") and not workdir_fs.is_remote("/tmp/run")
    assert workdir_fs.absolute("gs://bucket/run") == "gs://bucket/run"
    assert workdir_fs.join("gs://bucket/run", "checkpoints") == "gs://bucket/run/checkpoints"
    assert workdir_fs.absolute("run").startswith("/")
