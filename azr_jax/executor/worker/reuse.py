"""``isolation="reuse"``: one sandboxed child runs many programs in turn, and is discarded as
soon as a program changed anything it can see. Loaded by ``serve.py`` (stdlib only).

The child is forked and isolated exactly like a per-program child (``child._enter_child``:
own session, fds closed, sandbox dir, rlimits, sandbox uid; the worker's namespaces and
seccomp filter are inherited). It then loops: read a request from its request pipe, run the
program (``child._run_function``, frames streamed to the worker as usual), and after it:
  1. block every signal, collect garbage (the program's finalizers run while the audit
     latch is armed), switch the collector off: no handler, finalizer or gc callback of
     the program runs during the check;
  2. kill every other process of its sandbox uid (its own: the worker's uid +
     ``reuse_uid_offset``, so the worker's per-program children are never hit); send the
     held-back last frame (as a per-program child does); if a process or thread was
     left, exit (no verdict);
  3. compare against the ``state.Baseline`` and keep the verdict;
  4. with the next request the worker sends a one-time token (nothing of the last program
     runs any more that could read it first); the child answers
     ``token | keep (u8) | len (u16) | why`` and, if it stays, runs the new program.
The worker hands the child the new program only on a verdict with its token and ``keep``
set; a crash, deadline, forged frame, missing verdict or any change discards it and the new
program goes to a fresh child. A child also retires after ``MAX_PROGRAMS`` programs,
half its CPU budget, or ``MAX_RSS_GROWTH_KB`` of peak memory growth.
"""

import gc
import os
import resource
import select
import signal
import struct
import sys
import time
import types

TOKEN_BYTES = 16
MAX_PROGRAMS = 2000
LIFETIME_CPU_S = 3600
MAX_RSS_GROWTH_KB = 256 << 10
_VERDICT = struct.Struct("<BH")
_child = _frames = _messages = _state = None  # sibling modules, set by ``bind``
_WATCH = None  # state.watched([sys.modules]), found once in the worker by ``prepare``


def bind(child, frames, messages, state):
    """Hand over the sibling modules (the worker's modules load each other by path)."""
    global _child, _frames, _messages, _state
    _child, _frames, _messages, _state = child, frames, messages, state


def prepare():
    """In the worker, before it forks anything: find what reused children will watch."""
    global _WATCH
    _state.warm_abc_caches()
    _WATCH = _state.watched([sys.modules])


def _hide_worker_modules():
    """Programs must not reach the worker's code by name: drop it from ``sys.modules`` and
    give them an empty ``__main__``. Returns what the child must watch on top (the new
    ``__main__`` and its dict); the hidden modules stay watched (found before hiding)."""
    for name in [n for n in sys.modules if n.startswith("_azr_worker_")]:
        del sys.modules[name]
    main = sys.modules["__main__"] = types.ModuleType("__main__")
    return [main, main.__dict__]


def serve_programs(cfg, wdir, req_fd, rep_fd):
    """The reused child's loop; never returns (``os._exit``)."""
    exit_, write, read, kill, listdir = os._exit, os.write, os.read, os.kill, os.listdir
    collect, getrusage, setrlimit = gc.collect, resource.getrusage, resource.setrlimit
    verdict, cpu, self_ = _VERDICT.pack, resource.RLIMIT_CPU, resource.RUSAGE_SELF
    max_chars, hard = cfg["max_output_chars"], resource.getrlimit(resource.RLIMIT_CPU)[1]
    extra = _hide_worker_modules()
    read_request, run_function = _messages.Conn(req_fd, -1).read, _child._run_function
    block, all_signals = signal.pthread_sigmask, signal.valid_signals()
    gc_enable, gc_disable, gc_isenabled = gc.enable, gc.disable, gc.isenabled
    mask0, gc_on = block(signal.SIG_BLOCK, all_signals), gc_isenabled()
    gc_disable()  # the baseline is taken as every check runs: signals blocked, gc off
    base = _state.Baseline(wdir, req_fd, _WATCH, extra)
    gc.collect()
    gc.freeze()  # later collections only scan what programs made
    rss0, programs, why = getrusage(self_).ru_maxrss, 0, None
    try:
        while True:
            if programs:  # the verdict on the last program, under the worker's fresh token
                token = read(req_fd, TOKEN_BYTES)
                text = b"" if why is None else why.encode("utf-8", "replace")[:1000]
                write(rep_fd, token + verdict(why is None, len(text)) + text)
                if why is not None:
                    exit_(0)
            if gc_on:
                gc_enable()
            block(signal.SIG_SETMASK, mask0)
            req = read_request()
            if req is None:
                exit_(0)
            nonce, code, inputs, repeats, entry, cpu_s = req
            use = getrusage(self_)
            setrlimit(cpu, (min(hard, int(use.ru_utime + use.ru_stime) + cpu_s + 1), hard))
            is_closed = [b"import" not in code.encode("utf-8", "replace")]

            def inspect(co, is_closed=is_closed, closed=_state.closed):
                if is_closed[0] and not closed(co):
                    is_closed[0] = False

            writer, held = _frames.FrameWriter(rep_fd, nonce), []

            def emit(frame, write=writer.write, held=held):  # hold the last frame back
                if held:
                    write(held.pop())
                held.append(frame)

            base.arm()
            run_function(emit, code, inputs, repeats, entry, max_chars, inspect)
            mask = block(signal.SIG_BLOCK, all_signals)  # no handler runs until the verdict
            gc_was = gc_isenabled()
            collect()  # the program's finalizers run now, with the latch armed
            gc_disable()  # and no collection (so no gc callback) runs during the check
            try:
                kill(-1, signal.SIGKILL)  # every process of the sandbox uid but us
                left = True
            except OSError:
                left = len(listdir("/proc/self/task")) != 1
            for frame in held:
                writer.write(frame)
            if left:  # a process or thread: no verdict (the worker also counts our threads)
                exit_(0)
            try:
                why = "signal mask or gc switch changed" if mask != mask0 or gc_was != gc_on \
                    else base.changed(not is_closed[0])
            except BaseException as e:  # noqa: BLE001 - a broken state is a changed one
                why = "state check failed: %s" % type(e).__name__
            programs += 1
            use = getrusage(self_)
            if why is None and (programs >= MAX_PROGRAMS or use.ru_utime + use.ru_stime > hard / 2
                                or use.ru_maxrss - rss0 > MAX_RSS_GROWTH_KB):
                why = "retired (programs, CPU or memory budget)"
    except BaseException:  # noqa: BLE001 - anything unexpected: the worker discards us
        exit_(0)


class Reused:
    """The worker's handle on its reused child. Each request after the first is sent as
    ``token | request``; the child first answers with its verdict on the previous program
    (under that token), then runs the new one. So the check overlaps the worker's reply, and
    no program can see the token: when it is read, nothing of the last program runs."""

    def __init__(self, worker):
        self.worker = worker
        self.uid = worker.cfg["uid"] + worker.cfg["reuse_uid_offset"]  # its own sandbox uid
        self.pid, self.reaped = None, False
        self.discards = 0  # children discarded so far (reported by stats)
        self.last_why = None  # why the last child was discarded
        self.why = None  # what the current child's last verdict said

    def _start(self):
        w = self.worker
        if _WATCH is None:
            prepare()
        self.wdir = w._fresh_dir()
        os.chown(self.wdir, self.uid, self.uid)
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                cfg = dict(w.cfg, uid=self.uid)
                _child._enter_child(cfg, self.wdir, rep_w, -1, -1, LIFETIME_CPU_S, req_r)
                serve_programs(cfg, self.wdir, req_r, rep_w)
            finally:
                os._exit(70)
        os.close(req_r)
        os.close(rep_w)
        os.set_blocking(req_w, False)
        self.pid, self.req_w, self.rep_r, self.buf, self.ran = pid, req_w, rep_r, bytearray(), 0
        self.reaped = False  # set by the worker's catch-all reap if it ends by itself

    def _send(self, data, timeout_s):
        """Write to the child's request pipe; False if it is gone or stuck (never SIGPIPE:
        the worker ignores it around the write)."""
        view, deadline = memoryview(data), _now() + timeout_s
        old = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        try:
            while view:
                try:
                    view = view[os.write(self.req_w, view):]
                except BlockingIOError:
                    if _now() > deadline or not _wait_writable(self.req_w, deadline - _now()):
                        return False
        except OSError:
            return False
        finally:
            signal.signal(signal.SIGPIPE, old)
        return True

    def _submit(self, request, timeout_s):
        """Hand ``request`` to a child that may run it: the current one if its verdict on the
        last program says it stays, else a fresh one. False if no child takes it."""
        if self.pid is not None and self.ran:
            token = os.urandom(TOKEN_BYTES)
            if self._alone() and self._send(token + request, timeout_s) and \
                    self._verdict(token, timeout_s):
                return True
            self.discard(False, exited=self.why is not None)
        elif self.pid is not None:
            if self._send(request, timeout_s):
                return True
            self.discard(False)
        self._start()
        return self._send(request, timeout_s)

    def run(self, code, inputs, repeats, entry, timeout_s):
        """As ``_Worker.run_function``: ``(compile_error, runs)``."""
        w = self.worker
        n_exec = max(1, len(inputs)) * max(1, repeats)
        nonce = os.urandom(_frames.NONCE_BYTES)
        request = _messages.pack((nonce, code, inputs, repeats, entry, int(timeout_s * n_exec) + 2))
        if not self._submit(request, timeout_s + 1.0):
            end = self.discard(False)
            return (None, [(False, None, end or "sandbox child failed", False)] * len(inputs))
        self.ran += 1
        cfg = w.cfg
        frames, err, timed_out = _frames.wait_frames(
            self.rep_r, len(inputs), "ci", timeout_s * max(1, repeats), nonce,
            cfg["max_reply_bytes"], cfg["max_output_chars"], _now, self.buf)
        compile_error = frames[:1] and frames[0][0] == "c"
        complete = err is None and (len(frames) == len(inputs) or compile_error)
        end = None
        if not complete or self.buf:
            end = self.discard(timed_out)
        return _frames.function_outcome(frames, len(inputs), err or end or "program ended early")

    def _alone(self):
        """The child runs one thread (its loop) and no thread of a program could read the
        token (the loop exits when it finds one; this covers the moments before it does)."""
        try:
            return len(os.listdir("/proc/%d/task" % self.pid)) == 1
        except OSError:
            return False

    def _verdict(self, token, timeout_s):
        """True if the child answers ``token`` with a verdict that it stays. Reads exactly
        the verdict: the new program's frames may follow it in the pipe."""
        self.why = None
        head = self._read_exactly(TOKEN_BYTES + _VERDICT.size, timeout_s + 2.0)
        if head is None or head[:TOKEN_BYTES] != token:
            return False
        keep, n = _VERDICT.unpack_from(head, TOKEN_BYTES)
        text = self._read_exactly(n, 2.0) if n <= 1000 else None
        if text is None:
            return False
        self.why = text.decode("utf-8", "replace") or None
        return keep == 1 and self.why is None

    def _read_exactly(self, n, timeout_s):
        data, deadline = b"", _now() + timeout_s
        while len(data) < n:
            left = deadline - _now()
            if left <= 0 or not _wait_readable(self.rep_r, left):
                return None
            chunk = os.read(self.rep_r, n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def discard(self, timed_out, exited=False):
        """Kill the child (and anything it left), remove its dir; how the program ended.
        ``exited``: it gave its verdict and is exiting by itself, alone (it found no other
        process of its uid): reap it, no sweep needed."""
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        self.last_why = self.why or "no verdict (crash, deadline, process or thread left)"
        self.why = None
        for fd in (self.req_w, self.rep_r):
            os.close(fd)
        self.discards += 1
        if self.reaped:  # gone and reaped: its pid may be another's now; sweep its uid only
            end = self.worker._finish(None, timed_out, False, self.uid)
        else:
            end = self.worker._finish(pid, timed_out, exited, self.uid)
        self.worker._remove(self.wdir)
        return end


def _wait_writable(fd, timeout_s):
    return bool(_poll(fd, 4, timeout_s))  # POLLOUT


def _wait_readable(fd, timeout_s):
    return bool(_poll(fd, 1, timeout_s))  # POLLIN


def _poll(fd, events, timeout_s):
    poller = select.poll()
    poller.register(fd, events)
    return poller.poll(max(0.0, timeout_s) * 1000.0)


_now = time.monotonic
