"""What runs inside a forked sandbox child: isolation steps, the program itself, and the
framed reply pipe. Loaded by ``serve.py`` (stdlib only); see there for the protocol."""

import os
import resource
import signal
import sys

_ERR_CHARS = 2000


def _describe(exc):
    try:
        text = "%s: %s" % (type(exc).__name__, exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = "error (unprintable exception)"
    return text[:_ERR_CHARS]


def _child_limits(cfg, cpu_s):
    mem = cfg["memory_mb"] << 20
    limits = [
        (resource.RLIMIT_CPU, (cpu_s, cpu_s + 1)),
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_FSIZE, (cfg["max_file_bytes"], cfg["max_file_bytes"])),
        (resource.RLIMIT_NOFILE, (cfg["max_open_files"], cfg["max_open_files"])),
        (resource.RLIMIT_NPROC, (cfg["max_procs"], cfg["max_procs"])),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_MSGQUEUE, (0, 0)),  # no POSIX message queues (they outlive it)
    ]
    for which, value in limits:
        resource.setrlimit(which, value)


def _block_sockets():
    """Fallback when no network namespace is available: best effort, documented."""
    import _socket

    def _denied(*_a, **_k):
        raise OSError("network access is disabled in the sandbox")

    _socket.socket = _denied
    for name in ("socket", "_socket"):
        sys.modules[name] = None


def _close_fds_except(keep):
    """close_range(2) around the sorted fds in ``keep`` (everything >= 3 else goes)."""
    lo = 3
    for fd in keep:
        if fd > lo:
            os.closerange(lo, fd)
        lo = max(lo, fd + 1)
    os.closerange(lo, 1 << 20)


def _enter_child(cfg, wdir, out_fd, stdout_fd, stderr_fd, cpu_s, in_fd=-1):
    """In the forked child: isolate, then return (the caller runs the program).

    Few syscalls on purpose: every page the child touches costs a page fault (copy-on-write
    or a text page), the dominant per-program cost. Signal dispositions (SIGXFSZ ignored,
    SIGPIPE default) and /dev/null on fds 0 and 1 are inherited from the worker."""
    os.setsid()  # own session + process group: the worker kills the whole group
    if stdout_fd >= 0:
        os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd if stderr_fd >= 0 else 0, 2)  # fd 0 is /dev/null (read-write)
    keep = cfg["keep_fds"] + [out_fd] + ([in_fd] if in_fd >= 0 else [])  # in_fd: a reused
    _close_fds_except(sorted(keep))  # child's request pipe; every other inherited fd goes
    os.chdir(wdir)
    _child_limits(cfg, cpu_s)
    uid = cfg["uid"]
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if not cfg["netns"]:
        _block_sockets()


def _sweep_as(uid):
    """Kill every process owned by ``uid`` (the sandbox uid of this worker)."""
    os.setuid(uid)
    import time

    for _ in range(20):  # killed processes stay visible as zombies until reaped: retry a bit
        try:
            os.kill(-1, signal.SIGKILL)  # all processes we may signal, except ourselves
        except OSError:
            return
        time.sleep(0.002)


def _run_function(emit, code, inputs, repeats, entry, max_chars, inspect=None):
    """Run ``entry(<input>)`` ``repeats`` times per input; ``emit`` one frame per input.
    ``inspect``: called with each code object before it runs (a reused child's check)."""
    import builtins

    try:
        compiled = compile(code, "<program>", "exec")
    except BaseException as e:  # noqa: BLE001
        emit(("c", _describe(e)))
        return
    if inspect is not None:
        inspect(compiled)
    for inp in inputs:
        outs, err = [], None
        try:
            call = compile("%s(%s)" % (entry, inp), "<input>", "eval")
        except BaseException as e:  # noqa: BLE001
            emit(("i", False, None, "bad input: " + _describe(e), False))
            continue
        if inspect is not None:
            inspect(call)
        for _ in range(repeats):
            # no __name__, as the official exec(code, {}): the name reads builtins' own,
            # so an `if __name__ == "__main__":` block does not run
            scope = {"__builtins__": builtins}
            try:
                exec(compiled, scope)
                if not callable(scope.get(entry)):
                    err = "program defines no function %r" % entry
                    break
                text = repr(eval(call, scope))
                if type(text) is not str:
                    err = "repr() did not return a str"
                    break
                if len(text) > max_chars:
                    err = "result too large (%d chars > %d)" % (len(text), max_chars)
                    break
                outs.append(text)
            except BaseException as e:  # noqa: BLE001 - SystemExit etc. count as errors
                err = _describe(e)
                break
        if err is not None:
            emit(("i", False, None, err, False))
        else:
            same = all(o == outs[0] for o in outs)
            emit(("i", True, outs[0], None if same else "non-deterministic", same))


def _run_script(emit, script):
    status, err = 0, None
    try:
        exec(compile(script, "<script>", "exec"), {"__name__": "__main__"})
    except SystemExit as e:
        code = e.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        err = "SystemExit: %r" % (code,)
    except BaseException as e:  # noqa: BLE001
        status, err = 1, _describe(e)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - closed or broken by the script
            pass
    emit(("x", err is None, status, err))


_WARM_UP = [  # trusted snippets run in the worker itself before serving (see _warm_up)
    ("def f(s, n):\n    d = {}\n    for i, c in enumerate(s):\n        d[c] = d.get(c, 0) + i * n\n"
     "    out = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))\n"
     "    return [k.upper() + str(v) for k, v in out if v % 2 == 0], s[::-1].split('a'), "
     "{k: v for k, v in d.items()}, tuple(set(s))", ["'banana', 3", "'xyz', 0"]),
    ("class P:\n    def __init__(self, x):\n        self.x = x\n"
     "def f(nums):\n    nums = list(nums)\n    nums.sort(reverse=True)\n"
     "    acc = [P(x).x * 2 + 1 for x in nums if x > 0]\n"
     "    return sum(acc), max(nums), min(nums), len(acc), str(nums), float(acc[0]) / 3",
     ["[3, -1, 4, 1, 5]"]),
    ("def f(x):\n    try:\n        return {'a': 1}[x]\n    except KeyError as e:\n"
     "        raise ValueError(x) from e", ["'b'"]),
]


def _warm_up(cfg):
    """Run a few representative programs in the worker before forking anything.

    A child pays a page fault for every worker page it writes. Work done for the first time
    in a process (growing interned-string and type caches, first compile, new allocator
    arenas, specialising the shared code) would otherwise be redone, and faulted, by every
    child; doing it once here halves the faults of a typical program."""
    for _ in range(2):
        for code, inputs in _WARM_UP:
            _run_function(lambda frame: None, code, inputs, 2, "f", cfg["max_output_chars"])
