"""SandboxPool: long-lived minimal worker processes, one forked child per program.

Settings and result types are in ``sandbox_types``, the worker process handle in ``workerproc``.

The parent (trainer) side. One background dispatcher thread multiplexes all workers with
``selectors``: it keeps up to ``pipeline_depth`` requests queued in each worker's pipe (so a
worker never idles waiting for a round trip), reads replies, resolves futures, replaces dead
workers and enforces batch deadlines. See ``worker/serve.py`` for what happens inside a worker.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import selectors
import subprocess
import threading
import time

from azr_jax.executor import replies
from azr_jax.executor.worker import messages
from azr_jax.executor.sandbox_types import (ISOLATION_TIERS, Job, JobResult, RunResult,
                                            SandboxConfig, ScriptResult)
from azr_jax.executor.workerproc import _WorkerProc, sweep_uid

__all__ = ["Job", "JobResult", "RunResult", "SandboxConfig", "SandboxPool", "ScriptResult",
           "sweep_uid"]


class _Batch:
    def __init__(self, n, future, deadline):
        self.results, self.left = [None] * n, n
        self.future = future
        self.deadline = deadline
        self.done, self.tasks = False, []


class _Task:
    __slots__ = ("batch", "index", "request", "kind", "fallback")

    def __init__(self, batch, index, request, kind, fallback):
        self.batch, self.index, self.request, self.kind = batch, index, request, kind
        self.fallback = fallback  # result used when the task fails outside the program


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
        self.internal_errors = 0  # errors the dispatcher caught and survived
        self._thread = threading.Thread(target=self._loop, name="sandbox-dispatch", daemon=True)
        self._thread.start()

    # ---- public API -------------------------------------------------------------------
    def submit(self, jobs: list[Job], timeout: float | None = None) -> concurrent.futures.Future:
        """Non-blocking form of ``run``: a Future of ``list[JobResult]`` in job order."""
        cfg = self.config
        reqs, bounds, fallbacks = [], [], []
        for job in jobs:
            if type(job.repeats) is not int or job.repeats < 1 or job.isolation not in (None, *ISOLATION_TIERS):
                raise ValueError(f"bad Job.repeats {job.repeats!r} or isolation {job.isolation!r}")
            inputs = [str(i) for i in job.inputs]
            reqs.append(("f", job.code, inputs, int(job.repeats), job.entry, float(cfg.timeout_s),
                         job.isolation or cfg.isolation))
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
        """Per worker, what isolation it got: pid (inside its PID namespace: 1), netns (a
        private network namespace), uid (the sandbox uid, None = no uid drop), namespaces
        (entered: mnt, net, ipc, pid), seccomp, ipc_denied (SysV IPC and POSIX message
        queues off in its IPC namespace), rw_mounts (host mounts left writable; None = no
        mount namespace), watch_dirs (world-writable host dirs it scrubs after programs)."""
        return self._ask_each("ping")

    def stats(self) -> list[dict]:
        """Per worker, what it holds after reaping (leak checks): rss_kb, fds, children,
        sandbox_entries, leaked_dirs, ipc object counts (in its own IPC namespace; the
        host's when it has none)."""
        return self._ask_each("stats")

    def _ask_each(self, kind):
        n = len(self.workers)
        fut = self._submit([(kind,)] * n, [10.0] * n, [lambda why: None] * n, 30.0)
        return [r if isinstance(r, dict) else None for r in fut.result()]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(timeout=30)
        for w in self.workers:  # EOF: each worker reaps its programs, cleans up and exits
            try:
                w.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
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
            if not b.future.done():  # a caller may have cancelled it
                try:
                    b.future.set_result(b.results)
                except concurrent.futures.InvalidStateError:
                    pass

    def _convert(self, task, ok, reply):
        """A worker reply -> the task's result; ValueError if it has the wrong shape."""
        if ok is False:
            return task.fallback(reply if type(reply) is str else "sandbox worker error")
        if ok is not True:
            raise ValueError("reply status is not a bool")
        if task.kind == "f":
            return replies.job_result(reply, len(task.request[2]))
        if task.kind == "s":
            return replies.script_result(reply)
        return reply

    def _dispatch(self):
        depth = self.config.pipeline_depth
        while self._queue:
            live = [x for x in self.workers if not x.dead]
            if not live:
                return
            w = min(live, key=lambda x: len(x.sent))
            if len(w.sent) >= depth:
                return
            task = self._queue.popleft()
            if task.batch.done:
                continue
            self._next_id += 1
            w.out += messages.pack((self._next_id,) + task.request)
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
        used = 0
        for frame, used in messages.unpack(w.inbuf):
            if type(frame) is not tuple or len(frame) != 3 or not w.sent or w.sent[0][0] != frame[0]:
                raise ValueError("reply out of step with the requests")
            task = w.sent[0][1]
            result = self._convert(task, frame[1], frame[2])  # may raise: the worker is broken
            w.sent.popleft()
            self._complete(task, result)
        del w.inbuf[:used]

    def _guarded(self, w, step):
        """Run one step on worker ``w``; any error in it fails that worker's running request
        (its queued ones are retried) and replaces the worker: the dispatcher never dies."""
        try:
            step(w)
        except Exception as e:  # noqa: BLE001
            self.internal_errors += 1
            try:
                self._worker_died(w, "sandbox internal error: %s: %s" % (type(e).__name__, e))
            except Exception:  # noqa: BLE001
                self._abandon_all("sandbox internal error")

    def _abandon_all(self, why):
        """Last resort after an error the dispatcher cannot attribute: fail every request in
        flight, replace every worker; queued requests are kept."""
        for w in list(self.workers):
            for _, t in list(w.sent):
                self._complete(t, t.fallback(why))
            w.sent.clear()
            try:
                self._worker_died(w, why)
            except Exception:  # noqa: BLE001
                w.dead = True

    def _restart_dead(self):
        """Workers whose replacement failed to start (e.g. out of processes) get a retry."""
        for slot, w in enumerate(self.workers):
            if w.dead:
                try:
                    self.workers[slot] = self._start_worker(slot)
                except Exception:  # noqa: BLE001 - retried on the next turn
                    pass

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
        self.workers[w.slot] = self._start_worker(w.slot)  # on failure: _restart_dead retries

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
        failed_turns = 0
        while True:
            try:
                if self._turn():
                    return
                failed_turns = 0
            except Exception:  # noqa: BLE001 - the dispatcher never dies
                # An error no worker can be blamed for: retry the turn; if it keeps failing,
                # fail everything in flight and start over with fresh workers.
                self.internal_errors += 1
                failed_turns += 1
                time.sleep(0.01)
                if failed_turns >= 3:
                    failed_turns = 0
                    try:
                        self._abandon_all("sandbox internal error")
                    except Exception:  # noqa: BLE001
                        time.sleep(0.05)

    def _turn(self):
        """One pass of the dispatcher; True once the pool is closed."""
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
                    if not b.future.done():
                        b.future.set_exception(RuntimeError("SandboxPool closed"))
            return True
        self._restart_dead()
        self._dispatch()
        now = time.monotonic()
        self._expire(now)
        live = [b.deadline for b in self._batches if not b.done]
        wait = max(0.0, min(live) - now) if live else None
        if any(w.dead for w in self.workers):
            wait = 0.1 if wait is None else min(wait, 0.1)
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
                self._guarded(w, self._read)
            if events & selectors.EVENT_WRITE and key.fd == w.wfd and not w.dead:
                self._guarded(w, self._flush)
        return False
