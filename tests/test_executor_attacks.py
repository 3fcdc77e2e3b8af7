"""Attacks from the outside review (issue 19), one test per class, several variants each.

Each class is run through the public pool API with a benign program after the hostile ones;
every call has a bound (``submit(...).result(timeout)``), so a pool that hangs fails here
instead of hanging the suite. Shared programs live in ``executor_attack_programs``.
"""

import dataclasses
import os
import time

import pytest

from azr_jax.executor import Job, SandboxConfig, SandboxPool
from tests.executor_attack_programs import (TAG, BENIGN, BENIGN_OUT, FORGE_FRAMES, FORK_N, IPC_CREATE,
                                      NAMESPACES, SEE_PROCESSES, WRITE_DIRS, ZOMBIES,
                                      host_world_writable_dirs, leftovers, sysvipc_counts)

ROOT = os.geteuid() == 0
CFG = SandboxConfig(workers=2, timeout_s=1.0, memory_mb=256, max_procs=16)
NS_PARAMS = pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "no-namespaces"])
TIERS = pytest.mark.parametrize("isolation", ["process", "reuse"])


def _run(pool, jobs, timeout=60):
    return pool.submit(jobs).result(timeout=timeout)


def _serves(pool):
    res = _run(pool, [BENIGN] * 4, timeout=30)
    assert [r.output for r in res] == [BENIGN_OUT] * 4


@pytest.fixture(scope="module", params=["process", "reuse"])
def pool(request):
    """The whole suite runs against both isolation tiers."""
    with SandboxPool(dataclasses.replace(CFG, isolation=request.param)) as p:
        yield p


# ---- 1. forged reply frames ---------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(FORGE_FRAMES))
def test_forged_frames_fail_only_their_program(pool, variant):
    jobs = [Job(FORGE_FRAMES[variant], ["1", "2"]), BENIGN]
    hostile, benign = _run(pool, jobs)
    for run in hostile.runs:
        assert run.output is None or type(run.output) is str, (variant, run)
        assert run.output != "'FORGED'" and run.output != "12345", (variant, run)
    assert not hostile.ok or hostile.outputs == ["'real'", "'real'"], (variant, hostile)
    assert benign.ok and benign.output == BENIGN_OUT, (variant, benign)
    # The same frames from a whole script (the HumanEval path): a ScriptResult of str fields.
    script = pool.submit_scripts([FORGE_FRAMES[variant] + "print(f(1))\n"]).result(timeout=30)[0]
    assert type(script.stdout) is str and type(script.stderr) is str, script
    assert script.ok is False or script.stdout == "real\n", script
    _serves(pool)


def test_dispatcher_survives_internal_errors():
    """Any error inside the dispatcher fails the affected jobs only; the pool keeps serving."""
    with SandboxPool(SandboxConfig(workers=2, timeout_s=1.0)) as pool:
        real_convert, real_expire, calls = pool._convert, pool._expire, {"convert": 0, "expire": 0}

        def convert(task, ok, reply):
            calls["convert"] += 1
            if calls["convert"] == 1:
                raise RuntimeError("injected")
            return real_convert(task, ok, reply)

        def expire(now):
            calls["expire"] += 1
            if calls["expire"] in fail_turns:
                raise RuntimeError("injected outside any worker")
            return real_expire(now)

        fail_turns = {3}  # one failed turn: retried, nothing lost
        pool._convert, pool._expire = convert, expire
        res = _run(pool, [BENIGN] * 6, timeout=30)
        bad = [r for r in res if not r.ok]
        assert len(bad) == 1 and "internal error" in bad[0].first_error, res
        _serves(pool)
        # An error that persists: what is in flight fails, then the pool serves again.
        fail_turns = set(range(calls["expire"] + 1, calls["expire"] + 6))
        res = _run(pool, [BENIGN] * 6, timeout=30)
        assert all(r.ok or "internal error" in r.first_error for r in res), res
        _serves(pool)
        # A caller that cancels its future must not take the dispatcher down either.
        fut = pool.submit([Job("import time\ndef f(x):\n    time.sleep(0.3)\n    return x", ["1"])])
        fut.cancel()
        _serves(pool)
        assert pool.internal_errors >= 1


def test_worker_replies_are_checked():
    """A worker reply of the wrong shape (e.g. a non-str output) fails that job, never
    reaches the caller, and never stops the dispatcher."""
    with SandboxPool(SandboxConfig(workers=1, timeout_s=1.0)) as pool:
        real = pool._convert
        forged = iter([(True, (None, [(True, 12345, None, True)])), (True, (None, [()])),
                       (True, "junk"), ("yes", (None, [(True, "'x'", None, True)]))])

        def convert(task, ok, reply):
            try:
                ok, reply = next(forged)
            except StopIteration:
                pass
            return real(task, ok, reply)

        pool._convert = convert
        for _ in range(4):
            r = _run(pool, [BENIGN], timeout=30)[0]
            assert not r.ok and all(type(x.output) in (str, type(None)) for x in r.runs), r
        _serves(pool)


# ---- 2. IPC objects that outlive the program ----------------------------------------
@TIERS
@NS_PARAMS
def test_ipc_objects_cannot_be_created(namespaces, isolation):
    before = sysvipc_counts()
    cfg = SandboxConfig(workers=1, timeout_s=2.0, namespaces=namespaces, isolation=isolation)
    with SandboxPool(cfg) as pool:
        res = _run(pool, [Job(IPC_CREATE, [repr(v)]) for v in ("private", "keyed", "attach")])
        assert [r.output for r in res] == ["[]"] * 3, [r.output or r.first_error for r in res]
        stats = pool.stats()[0]
        assert stats["ipc"] == {"shm": 0, "sem": 0, "msg": 0} or not namespaces, stats
        _serves(pool)
    assert sysvipc_counts() == before


# ---- 3. writable host paths -----------------------------------------------------------
@TIERS
@NS_PARAMS
@pytest.mark.skipif(not ROOT, reason="without root programs run as the trainer's own user")
# One xdist worker runs every variant in turn: the no-namespace variants really write (then
# clean up) tagged files on the host, which another variant's leftover check would count.
@pytest.mark.xdist_group("host_writable_paths")
def test_no_host_path_keeps_what_a_program_writes(namespaces, isolation):
    dirs, tag = host_world_writable_dirs(), TAG + os.urandom(4).hex()
    assert "/run/lock" in dirs or not os.path.isdir("/run/lock")
    cfg = SandboxConfig(workers=1, timeout_s=8.0, namespaces=namespaces, isolation=isolation)
    with SandboxPool(cfg) as pool:
        # This run's own tag: other variants may run at once on another xdist worker (the
        # no-namespace ones really write, then clean up, their own tagged files).
        res = _run(pool, [Job(WRITE_DIRS, [f"{dirs!r}, True, {tag!r}"], repeats=1), BENIGN])
        assert res[1].output == BENIGN_OUT
        if namespaces:  # every host mount is read-only in the worker: nothing was written
            assert res[0].ok and res[0].output == "[]", res[0]
        # Either way, nothing a program wrote stays on the host.
        assert leftovers(dirs, tag) == []
        _serves(pool)
        roots = [w.sandbox_root(b) for w in pool.workers for b in ("/dev/shm", "/tmp")]
        pool.submit([Job("import time\ndef f(x):\n    time.sleep(30)", ["1"])])  # in flight
        time.sleep(0.5)
    assert leftovers(dirs, tag) == []
    assert not any(os.path.lexists(r) for r in roots), roots  # no sandbox dirs left behind


# ---- 4. new namespaces ----------------------------------------------------------------
@TIERS
@NS_PARAMS
def test_programs_cannot_create_namespaces(namespaces, isolation):
    cfg = SandboxConfig(workers=1, timeout_s=3.0, namespaces=namespaces, isolation=isolation)
    with SandboxPool(cfg) as pool:
        res = _run(pool, [Job(NAMESPACES, [repr(v)], repeats=1)
                          for v in ("unshare", "clone", "binary", "setns")] + [BENIGN])
        assert [r.output for r in res[:4]] == ["[]"] * 4, [r.output or r.first_error for r in res]
        assert res[4].output == BENIGN_OUT


# ---- 5. zombies and host processes ----------------------------------------------------
@TIERS
@NS_PARAMS
def test_clone_parent_children_never_exhaust_the_process_limit(namespaces, isolation):
    cfg = SandboxConfig(workers=1, timeout_s=2.0, max_procs=16, namespaces=namespaces,
                        isolation=isolation)
    with SandboxPool(cfg) as pool:
        zombies = _run(pool, [Job(ZOMBIES, ["8"], repeats=1)] * 6)
        # 48 children re-parented onto the worker, 16 processes allowed: later forks must work.
        forks = _run(pool, [Job(FORK_N, ["12"], repeats=1)])[0]
        assert forks.ok and forks.output == "12", forks
        assert pool.stats()[0]["children"] == 0  # nothing left unreaped
        if pool.info()[0]["seccomp"]:  # where the filter is in place, denied outright
            assert all(r.output in (None, "0") for r in zombies), zombies


@pytest.mark.skipif(not ROOT, reason="a PID namespace needs root")
def test_programs_see_no_host_processes(pool):
    res = _run(pool, [Job(SEE_PROCESSES, ["0"], repeats=1)])[0]
    assert res.ok, res
    seen = eval(res.output)  # [(pid, uid, cmdline)] of every process the program can see
    assert seen and all(uid == seen[0][1] for _, uid, _ in seen), seen  # only its own uid
    assert not any("pytest" in cmd or "sandbox-dispatch" in cmd for _, _, cmd in seen), seen


# ---- 6. files as traps ------------------------------------------------------------------
TRAPS = {
    "fifo": "os.mkfifo('.stdout'); os.mkfifo('.stderr')",
    "dir": "os.mkdir('.stdout'); os.mkdir('.stderr'); open('.stdout/x', 'w').write('1')",
    "symlink_dev_zero": "os.symlink('/dev/zero', '.stdout'); os.symlink('/dev/zero', '.stderr')",
    "fifo_dir_tree": ("os.mkfifo('p'); os.makedirs('a/b/c'); os.mkfifo('a/b/c/p'); "
                      "os.chmod('a/b', 0); os.symlink('/', 'a/root')"),
    # deeper than PATH_MAX (120 x 61 chars): only fd-relative removal gets it all
    "deep_tree": ("base = os.getcwd()\nfor i in range(120):\n    os.mkdir('d' * 60); "
                  "os.chdir('d' * 60); open('f', 'w').close()\nos.chdir(base)"),
}


@pytest.mark.parametrize("variant", sorted(TRAPS))
def test_scripts_cannot_trap_the_worker(pool, variant):
    script = ("import os\nfor n in ('.stdout', '.stderr'):\n    try:\n        os.unlink(n)\n"
              "    except OSError:\n        pass\n" + TRAPS[variant] + "\nprint('hi')\n")
    t0 = time.monotonic()
    res = pool.submit_scripts([script], timeout=20, script_timeout_s=5).result(timeout=30)[0]
    assert time.monotonic() - t0 < 8, "the worker blocked on a file the program controls"
    assert res.ok and res.stdout == "hi\n", res
    jobs = _run(pool, [Job("import os\ndef f(x):\n    " + TRAPS[variant].replace("\n", "\n    ")
                           + "\n    return x", ["1"], repeats=1), BENIGN])
    assert jobs[0].output == "1" and jobs[1].output == BENIGN_OUT, jobs
    stats = pool.stats()
    assert all(s["sandbox_entries"] == 0 and s["leaked_dirs"] == 0 for s in stats), stats


# ---- 7. rows that share a program -------------------------------------------------------
def test_execute_rows_depend_on_their_own_row_only(pool):
    from azr_jax.executor.rows import execute_rows

    remember = "import sys\ndef f(x):\n    return sys.__dict__.setdefault('azr_first', x)\n"
    exits = "import os\ndef f(x):\n    if x == 3:\n        os._exit(0)\n    return x\n"
    counter = "import sys\ndef f(x):\n    sys.n = getattr(sys, 'n', 0) + 1\n    return (x, sys.n)\n"
    rows = ([{"id": i, "code": remember, "input": str(i)} for i in (1, 2, 3)]
            + [{"id": 10 + i, "code": exits, "input": str(i)} for i in (1, 2, 3)]
            + [{"id": 20 + i, "code": counter, "input": str(i)} for i in (1, 2)])
    out = {r["id"]: r for r in execute_rows(pool, rows, repeats=1, progress=False)}
    assert [out[i]["output"] for i in (1, 2, 3)] == ["1", "2", "3"]
    assert [out[10 + i]["ok"] for i in (1, 2, 3)] == [True, True, False]
    assert [out[10 + i]["output"] for i in (1, 2)] == ["1", "2"]
    assert [out[20 + i]["output"] for i in (1, 2)] == ["(1, 1)", "(2, 1)"]


# ---- CLI flags (from item 11) -----------------------------------------------------------
@pytest.mark.parametrize("flags", [["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "-1"],
                                   ["--timeout", "0"], ["--repeats", "0"], ["--repeats", "-2"],
                                   ["--workers", "0"], ["--workers", "-1"]])
def test_execute_bad_flags_give_one_line(tmp_path, capsys, flags):
    from azr_jax.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "code": "def f(x):\\n    return x", "input": "1"}\n')
    try:  # a flag refused by argparse exits 2 through SystemExit, with the same one line
        rc = main(["execute", "--input", str(src), "--output", str(tmp_path / "o.jsonl")] + flags)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ") and flags[0] in err, err
    assert not (tmp_path / "o.jsonl").exists()


def test_execute_refuses_unwritable_output_before_running(tmp_path, capsys):
    from azr_jax.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "code": "def f(x):\\n    return x", "input": "1"}\n')
    # (a missing parent directory is created, as every command's output check does)
    for out in (tmp_path, "/proc/azr.jsonl", tmp_path / "in.jsonl" / "o.jsonl"):
        t0 = time.monotonic()
        rc = main(["execute", "--input", str(src), "--output", str(out), "--workers", "1"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "--output" in err, err
        assert "executed" not in err and time.monotonic() - t0 < 2  # no pool was started


def test_frame_codec_rejects_every_altered_frame():
    """Round trip of each frame kind; a changed nonce, sequence number, kind, flag or length
    (every single-byte change of the header and flags) is rejected, never mis-read."""
    from azr_jax.executor.worker import frames as fr

    nonce = os.urandom(fr.NONCE_BYTES)
    frames = [("c", "SyntaxError: x"), ("i", True, "'a\udc80'", None, True),
              ("i", True, "1", "non-deterministic", False), ("i", False, None, "boom", False),
              ("x", True, 0, None), ("x", False, -(1 << 63), "SystemExit: 2")]
    for seq, frame in enumerate(frames):
        r, w = os.pipe()
        writer = fr.FrameWriter(w, nonce)
        writer.seq = seq
        writer.write(frame)
        data = os.read(r, 1 << 16)
        os.close(r), os.close(w)
        payload = data[fr.HDR:]
        assert fr.decode(payload, nonce, seq, 100) == frame
        head = fr.NONCE_BYTES + 4 + 1 + (1 if frame[0] != "c" else 0)
        for i in range(head):
            bad = bytearray(payload)
            bad[i] ^= 0x41
            try:
                got = fr.decode(bytes(bad), nonce, seq, 100)
            except ValueError:
                continue
            assert got != frame and got[0] == frame[0] and i == head - 1, (frame, i, got)
        with pytest.raises(ValueError):
            fr.decode(payload, nonce, seq + 1, 100)
    r, w = os.pipe()
    fr.FrameWriter(w, nonce).write(("i", True, "x" * 101, None, True))
    payload = os.read(r, 1 << 16)[fr.HDR:]
    os.close(r), os.close(w)
    with pytest.raises(ValueError):  # an output over the limit
        fr.decode(payload, nonce, 0, 100)
