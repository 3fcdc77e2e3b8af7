"""``isolation="reuse"``: one sandboxed child runs job after job while every job is closed
(``state.closed``); a job that is not closed runs in it too, and it is discarded after that
job. A job whose text names an import cannot be closed: the worker gives it a per-program
child instead (``may_stay_closed``), and the reused child stays. Loaded by ``serve.py``.

The child is forked and isolated exactly like a per-program child (``child._enter_child``:
own session, fds closed, sandbox dir, rlimits, sandbox uid; the worker's namespaces and
seccomp filter are inherited), with one more limit: the latch (``state.LATCH`` at
``state.armed_limit()``), which only goes down. It then loops: read a request
from its request pipe, run the program (``child._run_function``, frames streamed to the
worker as usual); every code object (the program, each call text) is checked by
``state.closed`` before it runs, and one that is not closed lowers the latch at once, so
nothing the program does afterwards can take the decision back. While a job runs, an audit
hook lowers the latch on any event but the harness's compile/exec. After the job:
  1. block every signal, collect garbage (a generator's ``finally`` runs while armed),
     disarm, switch the collector off, flush stdout/stderr (a closed program may print);
  2. kill every other process of its sandbox uid (its own: the worker's uid +
     ``reuse_uid_offset``); send the held-back last frame; if a process or thread was
     left, exit (no verdict);
  3. with the next request the worker sends a one-time token; the child answers
     ``token | keep (u8) | len (u16) | why`` and, if it stays, runs the new program.
The worker reads the latch itself (``prlimit`` on the child) before it sends the next job,
and discards the child if it is down, whatever the child would answer; a crash, deadline,
forged frame, missing verdict or a verdict to go discards it too, and the new job goes to a
fresh child. A child also retires after ``MAX_PROGRAMS`` programs, half its CPU budget, or
``MAX_RSS_GROWTH_KB`` of peak memory growth. Rows that share a program never share state:
a closed program cannot keep any, and any other is alone in its child's last job.
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


def bind(child, frames, messages, state):
    """Hand over the sibling modules (the worker's modules load each other by path)."""
    global _child, _frames, _messages, _state
    _child, _frames, _messages, _state = child, frames, messages, state


def _hide_worker_modules():
    """Programs must not reach the worker's code by name: drop it from ``sys.modules`` and
    give them an empty ``__main__``."""
    for name in [n for n in sys.modules if n.startswith("_azr_worker_")]:
        del sys.modules[name]
    sys.modules["__main__"] = types.ModuleType("__main__")


def may_stay_closed(code, inputs):
    """False for a job that names an import in its text: it cannot be closed, so the
    worker gives it a fresh per-program child and keeps the reused one for the next job."""
    return "import" not in code and not any("import" in i for i in inputs)


def _others_of_uid(uid, _listdir=os.listdir, _stat=os.stat, _waitpid=os.waitpid):
    """Whether a process of ``uid`` other than us is left (after kill(-1): reap our own
    killed children first). Not kill's result: kill(-1) also counts the processes it may
    not signal (the worker's per-program children, exiting in the same PID namespace)."""
    try:
        while _waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    me = str(os.getpid())
    for name in _listdir("/proc"):  # with the worker's namespaces (hidepid=2): ours only
        if name.isdigit() and name != me:
            try:
                if _stat("/proc/" + name).st_uid == uid:
                    return True
            except OSError:
                pass
    return False


def _flush_std():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - /dev/null; nothing to report
            pass


def serve_programs(cfg, wdir, req_fd, rep_fd):
    """The reused child's loop; never returns (``os._exit``)."""
    exit_, write, read, kill, listdir = os._exit, os.write, os.read, os.kill, os.listdir
    collect, getrusage, setrlimit = gc.collect, resource.getrusage, resource.setrlimit
    verdict, cpu, self_ = _VERDICT.pack, resource.RLIMIT_CPU, resource.RUSAGE_SELF
    max_chars, hard = cfg["max_output_chars"], resource.getrlimit(resource.RLIMIT_CPU)[1]
    uid = cfg["uid"]
    _hide_worker_modules()
    read_request, run_function = _messages.Conn(req_fd, -1).read, _child._run_function
    block, all_signals = signal.pthread_sigmask, signal.valid_signals()
    gc_enable, gc_disable, gc_isenabled = gc.enable, gc.disable, gc.isenabled
    mask0, gc_on = block(signal.SIG_BLOCK, all_signals), gc_isenabled()
    gc_disable()
    latch = _state.Latch()
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
            is_closed = [True]

            def inspect(co, is_closed=is_closed, closed=_state.closed, lower=latch.lower):
                if is_closed[0] and not closed(co):  # before any of ``co`` runs
                    is_closed[0] = False
                    lower()

            writer, held = _frames.FrameWriter(rep_fd, nonce), []

            def emit(frame, write=writer.write, held=held):  # hold the last frame back
                if held:
                    write(held.pop())
                held.append(frame)

            latch.arm()
            run_function(emit, code, inputs, repeats, entry, max_chars, inspect)
            mask = block(signal.SIG_BLOCK, all_signals)  # no handler runs until the verdict
            gc_was = gc_isenabled()
            collect()  # what the program left runs now (a generator's finally), still armed
            latch.disarm()
            gc_disable()  # and no collection (so no gc callback) runs during the check
            _flush_std()
            try:
                kill(-1, signal.SIGKILL)  # every process of the sandbox uid but us
            except OSError:
                pass
            left = len(listdir("/proc/self/task")) != 1 or _others_of_uid(uid)
            for frame in held:
                writer.write(frame)
            if left:  # a process or thread: no verdict (the worker also counts our threads)
                exit_(0)
            if not is_closed[0]:
                why = "not closed (imports, or names reflection, dunders or private names)"
            elif latch.is_down():
                why = "an audit event (an import, ctypes, frames, ...)"
            elif mask != mask0 or gc_was != gc_on:
                why = "signal mask or gc switch changed"
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
        self.armed = _state.armed_limit()  # the latch's value while up

    @staticmethod
    def available(cfg):
        """The tier needs the sandbox uid (processes left are found by it) and a latch
        that can go down; without them every job gets a fresh child."""
        return cfg["uid"] is not None and _state.armed_limit() is not None

    def _start(self):
        w = self.worker
        self.wdir = w._fresh_dir()
        os.chown(self.wdir, self.uid, self.uid)
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                cfg = dict(w.cfg, uid=self.uid)
                resource.setrlimit(_state.LATCH, self.armed)
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
            if not (self._alone() and self._latch_up()):
                self.discard(False)
            else:
                token = os.urandom(TOKEN_BYTES)
                if self._send(token + request, timeout_s) and self._verdict(token, timeout_s):
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

    def _latch_up(self):
        """Read from outside the child (``/proc/PID/limits``: ``prlimit`` would need
        CAP_SYS_RESOURCE): the latch goes down before any code that is not closed runs and
        on any audit event, and no program can raise it again."""
        try:
            with open("/proc/%d/limits" % self.pid, "rb") as fh:
                line = next(ln for ln in fh if ln.startswith(b"Max locked memory"))
            up = tuple(int(v) for v in line.split()[3:5]) == self.armed
        except (OSError, StopIteration, ValueError):
            up = False
        if not up:
            self.why = "latch down (a job not closed, or an audit event)"
        return up

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
