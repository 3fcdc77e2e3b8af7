"""Sandbox worker: a minimal, long-lived process that runs each program in a forked child.

Started by ``azr_jax.executor.pool`` as ``python -S -s -P -B _worker.py setup CFG`` with a
scrubbed environment. It imports only the standard library (never JAX or numpy): fork cost
grows with the parent's touched memory, so the worker's heap is kept tiny and frozen.

``setup`` enters a fresh network namespace (no interfaces: no network) and mount namespace
(private tmpfs over /tmp, /var/tmp, /dev/shm) when the kernel allows it, then re-executes
itself as ``serve`` so the ctypes import does not stay in the serving heap.

Protocol on fds 0/1 (moved to private fds at start): frames of 4-byte little-endian length +
``marshal`` payload. Requests ``(task_id, "f", code, inputs, repeats, entry, timeout_s)`` and
``(task_id, "s", script, timeout_s)``; one reply frame per request (see ``_serve``).
Programs never see the protocol fds, so they cannot forge replies to the parent.
"""

import gc
import marshal
import os
import select
import signal
import sys


def _import_sibling(name):
    """Import a helper module that lives next to this script. -P keeps this dir off
    sys.path; it is added only while importing, so programs never see it."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        return __import__(name)
    finally:
        del sys.path[0]


_child = _import_sibling("_worker_child")
_HDR, _Conn, _describe = _child._HDR, _child._Conn, _child._describe
_enter_child, _run_function, _run_script = _child._enter_child, _child._run_function, _child._run_script
_sweep_as, _warm_up = _child._sweep_as, _child._warm_up


class _Worker:
    def __init__(self, conn, cfg):
        self.conn, self.cfg = conn, cfg
        self.counter = 0
        self.exiting = []  # (pid, dir) of finished children not reaped yet
        # Sandbox dirs live on tmpfs: rmdir on a disk filesystem costs milliseconds here.
        # With namespaces /tmp is our private tmpfs; without, prefer the host's /dev/shm.
        base = "/tmp" if cfg["netns"] or not os.access("/dev/shm", os.W_OK) else "/dev/shm"
        self.root = "%s/azr-sbx-%d" % (base, os.getpid())
        os.makedirs(self.root, mode=0o755, exist_ok=True)

    def _wait_frames(self, rfd, want, timeout_s, pid):
        """Collect ``want`` frames from the child; the deadline restarts after each one."""
        conn = _Conn(rfd, -1)
        frames, poller = [], select.poll()
        poller.register(rfd, select.POLLIN)
        deadline = _now() + timeout_s
        timed_out = False
        while len(frames) < want:
            while len(conn.buf) >= _HDR:
                n = int.from_bytes(conn.buf[:_HDR], "little")
                if len(conn.buf) < _HDR + n:
                    break
                try:
                    frames.append(marshal.loads(bytes(conn.buf[_HDR:_HDR + n])))
                except Exception:  # noqa: BLE001
                    return frames, "corrupt reply from program", False
                del conn.buf[:_HDR + n]
                deadline = _now() + timeout_s
            if len(frames) >= want:
                break
            left = deadline - _now()
            if left <= 0 or not poller.poll(left * 1000.0):
                if _now() >= deadline:
                    timed_out = True
                    break
                continue
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            conn.buf += chunk
            if len(conn.buf) > self.cfg["max_reply_bytes"]:
                return frames, "result too large", False
        return frames, None, timed_out

    def _finish(self, pid, timed_out, clean):
        """Kill what is left of the program, reap it, describe how it ended."""
        if clean:  # all replies are in; the child is already exiting (after its own sweep)
            os.waitpid(pid, 0)
            return None
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        _, status = os.waitpid(pid, 0)
        if self.cfg["uid"] is not None:
            # The program may have left descendants outside its process group.
            sweeper = os.fork()
            if sweeper == 0:
                try:
                    _sweep_as(self.cfg["uid"])
                finally:
                    os._exit(0)
            os.waitpid(sweeper, 0)
        if timed_out:
            return "timeout"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGKILL:
                return "killed (SIGKILL: CPU hard limit, out of memory, or killed from outside)"
            if sig == signal.SIGXCPU:
                return "CPU time limit exceeded"
            return "program crashed (signal %d)" % sig
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
            return "program exited with status %d" % os.WEXITSTATUS(status)
        return None

    def _fresh_dir(self):
        self.counter += 1
        wdir = "%s/%d" % (self.root, self.counter)
        os.mkdir(wdir, 0o700)
        if self.cfg["uid"] is not None:
            os.chown(wdir, self.cfg["uid"], self.cfg["uid"])
        return wdir

    def _spawn(self, body, wdir, cpu_s, capture):
        r, w = os.pipe()
        out_fd = err_fd = -1
        if capture:
            out_fd = os.open(wdir + "/.stdout", os.O_WRONLY | os.O_CREAT, 0o600)
            err_fd = os.open(wdir + "/.stderr", os.O_WRONLY | os.O_CREAT, 0o600)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                _enter_child(self.cfg, wdir, w, out_fd, err_fd, cpu_s)
                conn, last = _Conn(-1, w), []

                def emit(frame):  # stream frames, but hold the last one back (see below)
                    if last:
                        conn.write(last.pop())
                    last.append(frame)

                body(emit)
                code = 0
                # Kill descendants left by the program BEFORE the final frame: once the
                # worker has it, nothing of this program runs any more (cheap when none).
                if self.cfg["uid"] is not None:
                    try:
                        os.kill(-1, signal.SIGKILL)  # every process of the sandbox uid but us
                    except OSError:
                        pass
                for frame in last:
                    conn.write(frame)
                if self.cfg["uid"] is None:
                    os.killpg(0, signal.SIGKILL)  # our group, ourselves included
            except BaseException:  # noqa: BLE001
                pass
            finally:
                os._exit(code)
        os.close(w)
        for fd in (out_fd, err_fd):
            if fd >= 0:
                os.close(fd)
        return pid, r

    def run_function(self, code, inputs, repeats, entry, timeout_s):
        cfg = self.cfg
        n_exec = max(1, len(inputs)) * max(1, repeats)
        # CPU time is a backstop (the wall deadline is the real bound): generous, so that
        # a loaded machine or a multi-threaded program never turns a slow run into SIGKILL.
        cpu_s = int(timeout_s * n_exec) + 2
        wdir = self._fresh_dir()
        pid, r = self._spawn(
            lambda emit: _run_function(emit, code, inputs, repeats, entry, cfg["max_output_chars"]),
            wdir, cpu_s, False)
        try:
            frames, err, timed_out = self._wait_frames(r, len(inputs), timeout_s * max(1, repeats), pid)
        finally:
            os.close(r)
        clean = err is None and (len(frames) == len(inputs) or frames[:1] and frames[0][0] == "c")
        if clean:  # the child swept its descendants before its last frame: reap it later
            self.exiting.append((pid, wdir))
            end = None
        else:
            end = self._finish(pid, timed_out, False)
            _rmtree(wdir)
        if frames and frames[0][0] == "c":
            return (frames[0][1], [])
        runs = [f[1:] for f in frames if f[0] == "i"]
        reason = err or end or "program ended early"
        while len(runs) < len(inputs):
            runs.append((False, None, reason, False))
        return (None, runs)

    def run_script(self, script, timeout_s):
        wdir = self._fresh_dir()
        pid, r = self._spawn(lambda emit: _run_script(emit, script), wdir, int(timeout_s) + 2, True)
        try:
            frames, err, timed_out = self._wait_frames(r, 1, timeout_s, pid)
        finally:
            os.close(r)
        end = self._finish(pid, timed_out, err is None and len(frames) == 1)
        cap = self.cfg["max_stream_bytes"]
        out, errs = _read_cap(wdir + "/.stdout", cap), _read_cap(wdir + "/.stderr", cap)
        _rmtree(wdir)
        if frames:
            ok, status, perr = frames[0][1:]
            return (ok, status, out, errs, perr, False)
        reason = err or end or "script ended early"
        return (False, None, out, errs, reason, timed_out)

    def reap(self, block):
        """Reap finished children (their exit overlaps the next request), remove their dirs."""
        left = []
        for pid, wdir in self.exiting:
            try:
                done = os.waitpid(pid, 0 if block else os.WNOHANG)[0]
            except ChildProcessError:
                done = pid
            if done:
                _rmtree(wdir)
            else:
                left.append((pid, wdir))
        self.exiting = left

    def serve(self):
        conn, idle = self.conn, select.poll()
        idle.register(conn.rfd, select.POLLIN)
        while True:
            self.reap(block=len(self.exiting) > 4 or not (conn.buf or idle.poll(0)))
            msg = conn.read()
            if msg is None:  # the pool closed our pipe
                self.reap(block=True)
                _rmtree(self.root)
                return
            task_id, kind = msg[0], msg[1]
            try:
                if kind == "f":
                    reply = self.run_function(*msg[2:])
                elif kind == "s":
                    reply = self.run_script(*msg[2:])
                elif kind == "ping":
                    reply = (os.getpid(), self.cfg["netns"], self.cfg["uid"])
                else:
                    reply = ("unknown request %r" % (kind,), [])
                conn.write((task_id, True, reply))
            except Exception as e:  # noqa: BLE001 - report and keep serving
                conn.write((task_id, False, "sandbox worker error: " + _describe(e)))


def _now():
    return _clock()


def _read_cap(path, cap):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    try:
        return os.read(fd, cap).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _rmtree(path):
    """Remove a sandbox dir (never following symlinks); the fast path is an empty dir."""
    try:
        os.rmdir(path)
        return
    except OSError:
        pass
    try:
        entries = list(os.scandir(path))
    except OSError:
        entries = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                _rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def main():
    global _clock
    import time

    _clock = time.monotonic
    mode, cfg_hex = sys.argv[1], sys.argv[2]
    if mode == "setup":
        _import_sibling("_worker_setup")._setup(cfg_hex, os.path.abspath(__file__))
        return
    cfg = marshal.loads(bytes.fromhex(cfg_hex))
    # Move the protocol pipes off 0/1 so children never inherit them as std streams.
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    # Inherited by every child: a program's oversized write fails with EFBIG instead of
    # killing it, and a write to a closed pipe ends it as usual.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for name in cfg["preload"]:  # modules programs commonly import: imported once, here
        try:
            __import__(name)
        except ImportError:
            pass
    cfg["keep_fds"] = []
    if cfg.get("sys_path") or cfg.get("expose_fds"):
        setup = _import_sibling("_worker_setup")
        if cfg.get("sys_path"):
            setup._use_exposed_stdlib(*cfg["sys_path"])
        else:
            new_path, mapping, cfg["keep_fds"] = setup._expose_stdlib_fds()
            setup._use_exposed_stdlib(new_path, mapping)
    _warm_up(cfg)
    worker = _Worker(_Conn(rfd, wfd), cfg)
    gc.collect()
    gc.freeze()  # children's collections skip the worker's objects: fewer copy-on-write faults
    worker.serve()


_clock = None

if __name__ == "__main__":
    main()
