"""Trainer hardening with real trainer processes: one trainer per workdir, SIGTERM saves the
last finished step and resumes exactly, and a full disk or read-only workdir is one line."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from fs_faults import read_only_dir, remount_read_only, small_disk  # noqa: F401 (fixtures)

from azr_jax.errors import UserError
from azr_jax.pipeline.metrics import read_metrics
LOCK_FILE = ".azr-train.lock"  # = workdir_lock.LOCK_FILE; literal so the file imports on old code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["--config.sampling.max_new_tokens=16", "--config.trainer.checkpoint_every=100"]
VOLATILE = ("time/", "device_idle_frac", "tokens_per_s")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(ROOT, ".cache", "jax")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    return env


def _train(workdir, steps=5, extra=()):
    cmd = [sys.executable, "-m", "azr_jax.cli", "train", "--config", "tiny_cpu",
           "--workdir", str(workdir), f"--config.trainer.steps={steps}", *BASE, *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _stable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def _wait_for(cond, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _descendants(pid):
    """Every live process below `pid` (sandbox workers and their children)."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _checkpoint_dirs(workdir):
    path = workdir / "checkpoints"
    return sorted(os.listdir(path)) if path.exists() else []


def _assert_preempted(p, workdir):
    """SIGTERM -> rc 143, one checkpoint of the last logged step, nothing temporary left."""
    kids = _descendants(p.pid)
    assert kids, "the trainer should have sandbox workers"
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 143, out
    assert "Traceback" not in out
    steps = [r["step"] for r in read_metrics(str(workdir))]
    last = steps[-1]
    assert steps == list(range(1, last + 1))
    assert f"stopped by SIGTERM after step {last}" in out.strip().splitlines()[-1]
    assert _checkpoint_dirs(workdir) == [str(last)]  # no tmp dirs, the interval was 100
    _wait_for(lambda: not [k for k in kids if _alive(k)], timeout=30)
    return last


def test_sigterm_saves_last_step_and_resume_matches_uninterrupted(tmp_path):
    ref, work = tmp_path / "ref", tmp_path / "work"
    p = _train(ref, steps=5)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    p = _train(work, steps=40)  # trainer.steps may change on resume; the signal ends it
    _wait_for(lambda: len(read_metrics(str(work))) >= 2)
    stopped = _assert_preempted(p, work)
    assert stopped < 5
    p = _train(work, steps=5)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    assert f"trained steps {stopped}..5" in out
    a, b = _stable(read_metrics(str(ref))), _stable(read_metrics(str(work)))
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5]
    assert a == b


def test_second_trainer_refused_then_sigterm_with_staleness(tmp_path):
    """A second trainer on the workdir stops at once naming the holder; then SIGTERM with
    overlapping rollouts (staleness 1) still saves the last finished step."""
    work = tmp_path / "w"
    extra = ["--config.trainer.staleness=1"]
    p = _train(work, steps=40, extra=extra)
    _wait_for(lambda: (work / LOCK_FILE).exists() and (work / LOCK_FILE).read_text().strip())
    q = _train(work, steps=40, extra=extra)
    out_q = q.communicate(timeout=300)[0]
    assert q.returncode == 2, out_q
    last_line = out_q.strip().splitlines()[-1]
    assert last_line.startswith("error: workdir") and str(work) in last_line
    assert f"pid {p.pid}" in last_line and "Traceback" not in out_q
    _wait_for(lambda: _descendants(p.pid))
    stopped = _assert_preempted(p, work)
    p = _train(work, steps=stopped + 2, extra=extra)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    assert f"trained steps {stopped}..{stopped + 2}" in out
    assert [r["step"] for r in read_metrics(str(work))] == list(range(1, stopped + 3))


# ---- the workdir lock (no trainer needed) ------------------------------------------------

HOLD = ("import sys, time; from azr_jax.pipeline.workdir_lock import WorkdirLock; "
        "WorkdirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)")


def _holder(workdir, code=HOLD):
    p = subprocess.Popen([sys.executable, "-c", code, str(workdir)], env=_env(),
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_lock_names_holder_and_is_freed_by_sigkill(tmp_path):
    from azr_jax.pipeline.workdir_lock import WorkdirLock

    p = _holder(tmp_path)
    try:
        with pytest.raises(UserError) as e:
            WorkdirLock(tmp_path).acquire()
        assert str(tmp_path) in str(e.value) and f"pid {p.pid}" in str(e.value)
    finally:
        p.kill()
        p.wait()
    assert (tmp_path / LOCK_FILE).read_text().startswith(str(p.pid))  # a stale file remains
    lock = WorkdirLock(tmp_path).acquire()  # ...and does not block
    assert (tmp_path / LOCK_FILE).read_text().startswith(str(os.getpid()))
    lock.release()


def test_lock_not_inherited_by_children(tmp_path):
    """The holder's children (sandbox workers, a shell) do not keep the lock after it dies."""
    from azr_jax.pipeline.workdir_lock import WorkdirLock

    code = HOLD.replace("print(", "import subprocess; c = subprocess.Popen(['sleep', '60'], "
                                  "close_fds=False); print(c.pid, ")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                         env=_env(), stdout=subprocess.PIPE, text=True)
    child = int(p.stdout.readline().split()[0])
    try:
        p.kill()
        p.wait()
        assert _alive(child)
        WorkdirLock(tmp_path).acquire().release()
    finally:
        os.kill(child, signal.SIGKILL)


def test_lock_within_one_process_and_garbage_lock_file(tmp_path):
    from azr_jax.pipeline import workdir_lock

    (tmp_path / LOCK_FILE).write_bytes(b"\xff\x00 not a pid")  # garbage, nobody holds it
    with workdir_lock.hold(str(tmp_path)) as lock:
        assert lock.held
        with pytest.raises(UserError, match="in use by another trainer"):
            workdir_lock.WorkdirLock(tmp_path).acquire()  # a second trainer in this process
    with pytest.raises(RuntimeError):
        with workdir_lock.hold(str(tmp_path)):
            raise RuntimeError("crash")
    workdir_lock.WorkdirLock(tmp_path).acquire().release()  # released after the crash


def test_read_only_workdir_is_one_line(tmp_path, read_only_dir):  # noqa: F811
    (read_only_dir / "w").mkdir()
    remount_read_only(read_only_dir)
    for work in (read_only_dir / "w", read_only_dir / "new"):
        p = _train(work)
        out = p.communicate(timeout=300)[0]
        assert p.returncode == 2 and "Traceback" not in out, out
        assert out.strip().splitlines()[-1].startswith(f"error: workdir {work}")
        assert "Read-only file system" in out


@pytest.mark.parametrize("free", [0, 60_000])
def test_full_disk_is_one_line(small_disk, free):  # noqa: F811
    """No room at all (config.json fails) or room for the logs but not a checkpoint."""
    work = small_disk(free) / "w"
    p = _train(work, steps=2, extra=["--config.trainer.checkpoint_every=1"])
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 2 and "Traceback" not in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("error:") and "rerun the same command" in last, out
    assert "No space left on device" in last or "no space left on device" in last
    assert not [d for d in _checkpoint_dirs(work) if "tmp" in d]


def test_disk_error_in_logs_is_one_line(tmp_path, monkeypatch):
    """A write error while appending metrics/tasks (not a checkpoint save) is translated too."""
    from azr_jax import jsonl
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.trainer import train

    def full(path, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(jsonl, "append_rows", full)
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "sampling.max_new_tokens=16"])
    with pytest.raises(UserError) as e:
        train(cfg, str(tmp_path / "w"))
    msg = str(e.value)
    assert "No space left on device" in msg and "tasks.jsonl" in msg
    assert "no checkpoint was written yet" in msg


def test_lock_file_name_matches_module():
    from azr_jax.pipeline import workdir_lock

    assert workdir_lock.LOCK_FILE == LOCK_FILE
