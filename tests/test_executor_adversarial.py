"""Hostile programs: each must give an error within its deadline, leave no process behind,
write nothing outside its sandbox dir, and not affect the next (benign) program."""

import dataclasses
import os
import time

import pytest

from azr_jax.executor import Job, SandboxConfig, SandboxPool
from azr_jax.executor.sandbox_types import REUSE_UID_OFFSET

TIMEOUT = 0.5
CFG = SandboxConfig(workers=2, timeout_s=TIMEOUT, memory_mb=256, max_procs=16,
                    max_output_chars=10_000, max_file_bytes=1 << 20)
CANARY_DIR = "/var/tmp/azr-executor-canary" if os.geteuid() != 0 else "/root/.azr-executor-canary"
ESCAPE = "/root/azr_escape.txt" if os.geteuid() == 0 else "/var/tmp/azr_escape.txt"

PRELUDE = "import os, sys, time, signal, subprocess, threading, socket, ctypes, builtins, atexit\n"

# name -> body of f(x) (or a whole program when it starts with "PROGRAM:").
HOSTILE = {
    "infinite_loop": "while True: pass",
    "sleep": "time.sleep(100)",
    "busy_then_sleep": "sum(range(10**5)); time.sleep(50)",
    "fork_bomb": "while True:\n        try: os.fork()\n        except OSError: pass",
    "fork_and_sleep_children": "for _ in range(5):\n        if os.fork() == 0: time.sleep(100)\n    time.sleep(100)",
    "os_exit": "os._exit(0)",
    "os_exit_3": "os._exit(3)",
    "sys_exit": "sys.exit(0)",
    "kill_parent": "os.kill(os.getppid(), 9)",
    "kill_pgrp_parent": "os.killpg(os.getpgid(os.getppid()), 9)",
    "kill_all": "os.kill(-1, 9); time.sleep(100)",
    "kill_self": "os.kill(os.getpid(), 9)",
    "ignore_sigterm": "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGINT, signal.SIG_IGN)\n    while True: pass",
    "memory_bomb": "a = []\n    while True: a.append(bytearray(10**7))",
    "memory_bomb_one_shot": "return len(bytearray(10**11))",
    "recursion_python": "sys.setrecursionlimit(10**7)\n    def r(n): return r(n + 1) + 1\n    return r(0)",
    "recursion_c_stack": "sys.setrecursionlimit(10**8)\n    def r(n): return list(map(r, [n]))\n    return r(0)",
    "ctypes_null_deref": "return ctypes.string_at(0)",
    "ctypes_segv": "ctypes.memset(0, 1, 100)",
    "write_outside": f"open({ESCAPE!r}, 'w').write('x')",
    "write_tmp": "open('/tmp/azr_escape.txt', 'w').write('x'); return 'wrote'",
    "delete_outside": f"import shutil; shutil.rmtree({CANARY_DIR!r})",
    "unlink_outside": f"os.unlink({CANARY_DIR!r} + '/canary.txt')",
    "chmod_outside": f"os.chmod({CANARY_DIR!r}, 0)",
    "socket_connect": "s = socket.create_connection(('1.1.1.1', 80), timeout=0.2); return 'connected'",
    "socket_local": "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c = socket.create_connection(s.getsockname(), timeout=0.2); return 'connected'",
    "subprocess_outlives": "subprocess.Popen(['sleep', '100']); raise RuntimeError('left a child behind')",
    "subprocess_setsid_outlives": "subprocess.Popen(['sleep', '100'], start_new_session=True); os._exit(1)",
    "thread_outlives": "threading.Thread(target=time.sleep, args=(100,)).start(); time.sleep(100)",
    "daemon_double_fork": "if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0: time.sleep(100)\n        os._exit(0)\n    time.sleep(100)",
    "print_gigabytes": "while True: print('x' * 10**6)",
    "write_file_gigabytes": "f = open('big', 'w')\n    while True: f.write('x' * 10**6)",
    "huge_result": "return 'x' * 10**7",
    "repr_loops": "PROGRAM:class R:\n    def __repr__(self):\n        while True: pass\ndef f(x):\n    return R()",
    "repr_raises": "PROGRAM:class R:\n    def __repr__(self):\n        raise ValueError('no')\ndef f(x):\n    return R()",
    "repr_not_str": "PROGRAM:class R:\n    def __repr__(self):\n        return 5\ndef f(x):\n    return R()",
    "exception_str_raises": "PROGRAM:class E(Exception):\n    def __str__(self):\n        raise RuntimeError\ndef f(x):\n    raise E()",
    "close_stdout_then_fail": "os.close(1); sys.stdout.close(); raise RuntimeError('closed')",
    "read_stdin_then_loop": "sys.stdin.read(); os.read(0, 10)\n    while True: pass",
    "atexit_handler": "atexit.register(lambda: time.sleep(100)); raise SystemExit(1)",
    "keyboard_interrupt": "raise KeyboardInterrupt",
    "import_trick_dunder": "__import__('os').system('sleep 100')\n    time.sleep(100)",
    "importlib_trick": "import importlib; importlib.import_module('os').kill(os.getppid(), 9); time.sleep(100)",
    "exec_trick": "exec(\"import os\\nos.kill(os.getppid(), 9)\"); time.sleep(100)",
    "getattr_builtins_trick": "getattr(builtins, '__imp' + 'ort__')('os')._exit(0)",
    "too_many_files": "fs = [open('f%d' % i, 'w') for i in range(10000)]",
    "setrlimit_raise": "import resource; resource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))\n    while True: pass",
    "mutate_builtins_then_fail": "builtins.len = lambda x: 42; builtins.repr = None; raise RuntimeError",
    "poison_module_cache": "import json; json.dumps = None; sys.modules['collections'] = None; raise RuntimeError",
}


def _program(body: str) -> str:
    if body.startswith("PROGRAM:"):
        return body[len("PROGRAM:"):]
    return PRELUDE + "def f(x):\n    " + body + "\n"


def _sandbox_procs(uids):
    """pids of live (non-zombie) processes running as one of the sandbox uids."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                text = fh.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        uid = int(fields.get("Uid", "0 0").split()[0])
        if uid in uids and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(pid))
    return found


def _too_many(allowed):
    """Whether some sandbox uid has more live processes than ``allowed[uid]``."""
    per_uid = {}
    for pid in _sandbox_procs(set(allowed)):
        try:
            with open(f"/proc/{pid}/status") as fh:
                uid = next(int(l.split()[1]) for l in fh if l.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        per_uid[uid] = per_uid.get(uid, 0) + 1
    return any(n > allowed[uid] for uid, n in per_uid.items())


BENIGN = Job("import collections\ndef f(x):\n    return sorted(collections.Counter(x).items())",
             ["'banana'"])
BENIGN_OUT = "[('a', 3), ('b', 1), ('n', 2)]"


@pytest.fixture(scope="module", params=["process", "reuse"])
def pool(request):
    """The whole suite runs against both isolation tiers."""
    with SandboxPool(dataclasses.replace(CFG, isolation=request.param)) as p:
        yield p


@pytest.fixture()
def canary():
    os.makedirs(CANARY_DIR, exist_ok=True)
    with open(CANARY_DIR + "/canary.txt", "w") as fh:
        fh.write("alive")
    yield CANARY_DIR + "/canary.txt"


def test_at_least_40_hostile_programs():
    assert len(HOSTILE) >= 40


def test_hostile_programs_contained(pool, canary):
    names = sorted(HOSTILE)
    jobs = []
    for name in names:  # each hostile program followed by a benign one
        jobs += [Job(_program(HOSTILE[name]), ["1"]), BENIGN]
    worker_pids = {w.proc.pid for w in pool.workers}
    t0 = time.monotonic()
    results = pool.run(jobs, timeout=120)
    wall = time.monotonic() - t0
    for name, hostile, benign in zip(names, results[0::2], results[1::2]):
        assert not hostile.ok, (name, hostile)
        assert hostile.first_error, name
        assert benign.ok and benign.output == BENIGN_OUT, (name, benign)
    # Every program is bounded by its own deadline (the pool runs 2 at a time).
    bound = sum(TIMEOUT * 2 + 1.5 for _ in names) / len(pool.workers) + 10
    assert wall < bound, wall
    # Per worker: its uid (per-program children: none may be left) and its reused child's
    # uid (the live reused child itself, nothing else).
    allowed = {w.uid + off: int(off > 0) for w in pool.workers if w.uid is not None
               for off in (0, REUSE_UID_OFFSET)}
    if allowed:
        deadline = time.monotonic() + 5
        while _too_many(allowed) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _too_many(allowed), (allowed, _sandbox_procs(set(allowed)))
    assert not os.path.exists(ESCAPE)
    assert not os.path.exists("/tmp/azr_escape.txt")
    assert open(canary).read() == "alive"
    # Workers the programs tried to kill are alive (or were replaced) and still serve.
    assert len(pool.workers) == CFG.num_workers()
    assert all(w.proc.poll() is None for w in pool.workers)
    after = pool.run([BENIGN] * 4)
    assert all(r.output == BENIGN_OUT for r in after)
    print(f"{len(names)} hostile programs in {wall:.1f}s; workers replaced: {pool.restarts}; "
          f"original workers alive: {worker_pids & {w.proc.pid for w in pool.workers}}")


def test_expected_reasons(pool):
    names = ["infinite_loop", "sleep", "memory_bomb_one_shot", "huge_result", "recursion_c_stack",
             "repr_raises", "os_exit_3"]
    res = pool.run([Job(_program(HOSTILE[n]), ["1"]) for n in names], timeout=60)
    why = dict(zip(names, (r.first_error for r in res)))
    assert why["infinite_loop"] == "timeout"
    assert why["sleep"] == "timeout"
    assert "MemoryError" in why["memory_bomb_one_shot"]
    assert "result too large" in why["huge_result"]
    assert "crashed" in why["recursion_c_stack"] or "RecursionError" in why["recursion_c_stack"]
    assert "ValueError: no" in why["repr_raises"]
    assert "status 3" in why["os_exit_3"]


def test_mutations_do_not_leak_between_programs(pool):
    poison = Job(_program("builtins.sorted = lambda *a, **k: 'poisoned'; import collections; "
                          "collections.Counter = None; return 'ok'"), ["1"], repeats=1)
    res = pool.run([poison, BENIGN] * 3)
    assert [r.output for r in res[1::2]] == [BENIGN_OUT] * 3


def test_no_network(pool):
    info = pool.info()
    res = pool.run([Job(_program(HOSTILE["socket_connect"]), ["1"]),
                    Job(_program(HOSTILE["socket_local"]), ["1"])])
    assert not any(r.ok for r in res), (info, res)
