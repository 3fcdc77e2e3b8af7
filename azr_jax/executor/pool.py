"""SandboxPool: long-lived minimal worker processes, one forked child per program.

The parent (trainer) side. One background dispatcher thread multiplexes all workers with
``selectors``: it keeps up to ``pipeline_depth`` requests queued in each worker's pipe (so a
worker never idles waiting for a round trip), reads replies, resolves futures, replaces dead
workers and enforces batch deadlines. See ``_worker.py`` for what happens inside a worker.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import marshal
import os
import selectors
import subprocess
import sys
import threading
import time

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_HDR = 4


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    """Sandbox settings (one object, passed down from the trainer config).

    timeout_s: wall-clock limit for ONE execution (one input, one repeat) or one script; a
      program's child gets ``timeout_s * repeats`` per input, restarted after each input.
    memory_mb: address-space limit of each program. workers: None = os.cpu_count().
    namespaces: use a network + mount namespace per worker where the kernel allows it.
    drop_privileges: when running as root, run programs as uid ``uid_base + worker pid``
      (unique per live worker, so pools never signal each other's programs).
    batch_timeout_s: bound on a whole ``run``/``submit`` call; None derives it from the
      per-program bounds, so a call can never hang.
    preload_modules: stdlib modules each worker imports once before serving, so programs
      that import them pay nothing (~1 MB more to fork; every child gets its own copy).
    """

    workers: int | None = None
    timeout_s: float = 5.0
    memory_mb: int = 1024
    max_output_chars: int = 100_000
    max_stream_bytes: int = 1 << 20
    max_file_bytes: int = 16 << 20
    max_open_files: int = 64
    max_procs: int = 32
    tmpfs_mb: int = 256
    namespaces: bool = True
    drop_privileges: bool = True
    uid_base: int = 1_000_000_000
    hash_seed: int = 0
    pipeline_depth: int = 8
    batch_timeout_s: float | None = None
    preload_modules: tuple[str, ...] = ("collections", "itertools", "functools", "math", "heapq",
                                        "bisect", "operator", "string", "re")

    def num_workers(self) -> int:
        return max(1, self.workers or os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class Job:
    """Run ``entry(<input>)`` for each input text (the text of the call's arguments)."""

    code: str
    inputs: list[str]
    repeats: int = 2
    entry: str = "f"


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One input of a job: ``output`` is repr(result); ``deterministic``: all repeats equal."""

    ok: bool
    output: str | None
    error: str | None
    deterministic: bool


@dataclasses.dataclass(frozen=True)
class JobResult:
    """Result of one Job. ``runs[i]`` belongs to ``inputs[i]``.

    ``ok``: every input ran, without error and deterministically. ``error``: the first
    problem (compile error, timeout, crash, ...), None when ok.
    """

    runs: list[RunResult]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok and r.deterministic for r in self.runs)

    @property
    def outputs(self) -> list[str | None]:
        return [r.output for r in self.runs]

    @property
    def deterministic(self) -> bool:
        return all(r.deterministic for r in self.runs)

    @property
    def output(self) -> str | None:
        """Output of the first input (convenience for single-input jobs)."""
        return self.runs[0].output if self.runs else None

    @property
    def first_error(self) -> str | None:
        if self.error:
            return self.error
        return next((r.error for r in self.runs if r.error), None)


@dataclasses.dataclass(frozen=True)
class ScriptResult:
    """A whole script run as ``__main__``. ``ok``: it ran to its end with no exception
    (SystemExit counts as an exception, as in the HumanEval/CRUXEval harnesses)."""

    ok: bool
    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None
    timed_out: bool


class _Batch:
    def __init__(self, n, future, deadline):
        self.results = [None] * n
        self.left = n
        self.future = future
        self.deadline = deadline
        self.done = False
        self.tasks = []


class _Task:
    __slots__ = ("batch", "index", "request", "kind", "fallback")

    def __init__(self, batch, index, request, kind, fallback):
        self.batch, self.index, self.request, self.kind = batch, index, request, kind
        self.fallback = fallback  # result used when the task fails outside the program


class _WorkerProc:
    def __init__(self, slot, cfg: SandboxConfig):
        self.slot = slot
        root = os.geteuid() == 0
        base = cfg.uid_base if (root and cfg.drop_privileges) else None
        wcfg = dict(
            namespaces=cfg.namespaces and root, tmpfs_mb=cfg.tmpfs_mb, memory_mb=cfg.memory_mb,
            max_file_bytes=cfg.max_file_bytes, max_open_files=cfg.max_open_files,
            max_procs=cfg.max_procs, max_output_chars=cfg.max_output_chars,
            max_stream_bytes=cfg.max_stream_bytes, max_reply_bytes=4 * cfg.max_output_chars + (1 << 20),
            uid=base, preload=list(cfg.preload_modules))
        env = {"PYTHONHASHSEED": str(cfg.hash_seed), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-s", "-P", "-B", _WORKER, "setup", marshal.dumps(wcfg).hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd="/", bufsize=0,
            close_fds=True, start_new_session=True)
        self.uid = None if base is None else base + self.proc.pid  # as the worker computes it
        self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.out = bytearray()
        self.inbuf = bytearray()
        self.sent: collections.deque[tuple[int, _Task]] = collections.deque()
        self.dead = False

    def kill(self):
        self.dead = True
        try:
            self.proc.kill()
        except OSError:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.uid is not None:
            sweep_uid(self.uid)


def sweep_uid(uid: int) -> None:
    """Kill every process running as ``uid`` (a sandbox uid), from a tiny helper process."""
    code = ("import os,signal\nos.setuid(%d)\nfor _ in range(64):\n  try: os.kill(-1, 9)\n"
            "  except OSError: break\n") % uid
    subprocess.run([sys.executable, "-S", "-s", "-P", "-c", code], env={}, timeout=30, check=False)


class SandboxPool:
    """Run untrusted programs, each in its own forked, resource-limited child process.

    Use as a context manager (or call ``close()``). ``run`` blocks and returns results in
    order; ``submit`` returns a ``concurrent.futures.Future`` of the same list. Every call has
    a deadline (``timeout`` argument or ``SandboxConfig.batch_timeout_s`` or a bound derived
    from the per-program limits): work not done by then comes back as errors.
    """

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self._lock = threading.Lock()
        self._incoming: collections.deque = collections.deque()
        self._queue: collections.deque[_Task] = collections.deque()
        self._batches: list[_Batch] = []
        self._next_id = 0
        self._closed = False
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self.workers = [self._start_worker(i) for i in range(self.config.num_workers())]
        self.restarts = 0
        self._thread = threading.Thread(target=self._loop, name="sandbox-dispatch", daemon=True)
        self._thread.start()

    # ---- public API -------------------------------------------------------------------
    def submit(self, jobs: list[Job], timeout: float | None = None) -> concurrent.futures.Future:
        """Non-blocking form of ``run``: a Future of ``list[JobResult]`` in job order."""
        cfg = self.config
        reqs, bounds, fallbacks = [], [], []
        for job in jobs:
            inputs = [str(i) for i in job.inputs]
            reqs.append(("f", job.code, inputs, int(job.repeats), job.entry, float(cfg.timeout_s)))
            bounds.append(cfg.timeout_s * max(1, job.repeats) * max(1, len(inputs)) + 1.0)
            fallbacks.append(lambda why, n=len(inputs): JobResult(
                [RunResult(False, None, why, False)] * n, why))
        return self._submit(reqs, bounds, fallbacks, timeout)

    def run(self, jobs: list[Job], timeout: float | None = None) -> list[JobResult]:
        """Run every job; results in order. Never blocks past the batch deadline."""
        return self.submit(jobs, timeout).result()

    def submit_scripts(self, scripts: list[str], timeout: float | None = None,
                       script_timeout_s: float | None = None) -> concurrent.futures.Future:
        t = float(script_timeout_s or self.config.timeout_s)
        reqs = [("s", s, t) for s in scripts]
        fallbacks = [lambda why: ScriptResult(False, None, "", "", why, "deadline" in why)] * len(scripts)
        return self._submit(reqs, [t + 1.0] * len(scripts), fallbacks, timeout)

    def run_script(self, scripts: list[str], timeout: float | None = None,
                   script_timeout_s: float | None = None) -> list[ScriptResult]:
        """Run whole scripts as ``__main__`` (HumanEval-style tests); results in order."""
        return self.submit_scripts(scripts, timeout, script_timeout_s).result()

    def info(self) -> list[dict]:
        """Per worker: pid, whether it has a private network namespace, the sandbox uid."""
        fut = self._submit([("ping",)] * len(self.workers), [10.0] * len(self.workers),
                           [lambda why: None] * len(self.workers), 30.0)
        return [dict(pid=r[0], netns=r[1], uid=r[2]) if r else None for r in fut.result()]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(timeout=30)
        for w in self.workers:
            w.kill()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._sel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- internals --------------------------------------------------------------------
    def _submit(self, reqs, bounds, fallbacks, timeout):
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if not reqs:
            fut.set_result([])
            return fut
        if timeout is None:
            timeout = self.config.batch_timeout_s
        if timeout is None:  # the work spread over the workers, plus the slowest program
            timeout = sum(bounds) / len(self.workers) + max(bounds) + 30.0
        batch = _Batch(len(reqs), fut, time.monotonic() + timeout)
        tasks = [_Task(batch, i, r, r[0], fb) for i, (r, fb) in enumerate(zip(reqs, fallbacks))]
        batch.tasks = tasks
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed")
            self._incoming.append((batch, tasks))
        self._wake()
        return fut

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _start_worker(self, slot):
        w = _WorkerProc(slot, self.config)
        self._sel.register(w.rfd, selectors.EVENT_READ, w)
        return w

    def _complete(self, task, value):
        b = task.batch
        if b.done or b.results[task.index] is not None:
            return
        b.results[task.index] = value
        b.left -= 1
        if b.left == 0:
            b.done = True
            b.future.set_result(b.results)

    def _convert(self, task, ok, reply):
        if not ok:
            return task.fallback(reply)
        if task.kind == "f":
            err, runs = reply
            if err is not None:
                n = len(task.request[2])
                return JobResult([RunResult(False, None, err, False)] * n, err)
            return JobResult([RunResult(*r) for r in runs])
        if task.kind == "s":
            return ScriptResult(*reply)
        return reply

    def _dispatch(self):
        depth = self.config.pipeline_depth
        while self._queue:
            w = min(self.workers, key=lambda x: len(x.sent))
            if len(w.sent) >= depth:
                return
            task = self._queue.popleft()
            if task.batch.done:
                continue
            self._next_id += 1
            data = marshal.dumps((self._next_id,) + task.request)
            w.out += len(data).to_bytes(_HDR, "little") + data
            w.sent.append((self._next_id, task))
            self._flush(w)

    def _flush(self, w):
        if w.dead or not w.out:
            return
        try:
            n = os.write(w.wfd, w.out)
            del w.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._worker_died(w, "sandbox worker died")
            return
        self._register_write(w)

    def _register_write(self, w):
        try:
            key = self._sel.get_key(w.wfd)
        except KeyError:
            key = None
        if w.out and key is None:
            self._sel.register(w.wfd, selectors.EVENT_WRITE, w)
        elif not w.out and key is not None:
            self._sel.unregister(w.wfd)

    def _read(self, w):
        try:
            chunk = os.read(w.rfd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._worker_died(w, "sandbox worker died while running this program")
            return
        w.inbuf += chunk
        buf = w.inbuf
        pos = 0
        while len(buf) - pos >= _HDR:
            n = int.from_bytes(buf[pos:pos + _HDR], "little")
            if len(buf) - pos - _HDR < n:
                break
            task_id, ok, reply = marshal.loads(bytes(buf[pos + _HDR:pos + _HDR + n]))
            pos += _HDR + n
            if w.sent and w.sent[0][0] == task_id:
                _, task = w.sent.popleft()
                self._complete(task, self._convert(task, ok, reply))
        del buf[:pos]

    def _worker_died(self, w, why):
        """The request being executed fails; the ones still queued in the pipe are retried."""
        if w.dead and w not in self.workers:
            return
        for fd in (w.rfd, w.wfd):
            try:
                self._sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        sent = list(w.sent)
        w.sent.clear()
        w.kill()
        if sent:
            _, running = sent[0]
            self._complete(running, running.fallback(why))
            self._queue.extendleft(t for _, t in reversed(sent[1:]))
        self.restarts += 1
        self.workers[w.slot] = self._start_worker(w.slot)

    def _expire(self, now):
        for b in [b for b in self._batches if not b.done and b.deadline <= now]:
            why = "batch deadline exceeded"
            for w in list(self.workers):
                if w.sent and w.sent[0][1].batch is b:
                    self._worker_died(w, why)  # the worker may be stuck: replace it
            for w in self.workers:
                for _, t in w.sent:
                    if t.batch is b:
                        self._complete(t, t.fallback(why))
            for t in self._queue:
                if t.batch is b:
                    self._complete(t, t.fallback(why))
            for t in b.tasks:  # anything else unfinished (e.g. on a replaced worker)
                self._complete(t, t.fallback(why))
        self._batches = [b for b in self._batches if not b.done]

    def _loop(self):
        while True:
            with self._lock:
                closed = self._closed
                while self._incoming:
                    batch, tasks = self._incoming.popleft()
                    self._batches.append(batch)
                    self._queue.extend(tasks)
            if closed:
                for b in self._batches:
                    if not b.done:
                        b.done = True
                        b.future.set_exception(RuntimeError("SandboxPool closed"))
                return
            self._dispatch()
            now = time.monotonic()
            self._expire(now)
            live = [b.deadline for b in self._batches if not b.done]
            wait = max(0.0, min(live) - now) if live else None
            for key, events in self._sel.select(wait):
                w = key.data
                if w is None:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if w.dead:
                    continue
                if events & selectors.EVENT_READ and key.fd == w.rfd:
                    self._read(w)
                if events & selectors.EVENT_WRITE and key.fd == w.wfd and not w.dead:
                    self._flush(w)
