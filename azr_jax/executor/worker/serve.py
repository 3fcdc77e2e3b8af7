"""Sandbox worker: a minimal, long-lived process that runs each program in a forked child.

Started by ``azr_jax.executor.pool`` as ``python -S -s -P -B worker/serve.py setup CFG`` with a
scrubbed environment. It imports only the standard library (never JAX or numpy): fork cost
grows with the parent's touched memory, so the worker's heap is kept tiny and frozen.

``setup`` (``setup.py``, ``namespaces.py``) enters private mount, network, IPC and PID
namespaces when the kernel allows it (every host mount read-only, private tmpfs over /tmp,
/var/tmp, /dev/shm; SysV IPC off; we become the namespace's init), installs the seccomp
filter (``seccomp.py``), then re-executes itself as ``serve`` so the ctypes import does
not stay in the serving heap.

Protocol with the pool on fds 0/1 (moved to private fds at start): frames of 4-byte
little-endian length + ``marshal`` payload (``messages.py``). Requests ``(task_id, "f", code, inputs, repeats,
entry, timeout_s, isolation)``, ``(task_id, "s", script, timeout_s)``, ``(task_id, "ping")`` and
``(task_id, "stats")``; one reply frame per request (see ``serve``). Programs never see these
fds. A program's own child reports to us over a per-program pipe the program CAN reach; those
frames are nonce-checked and parsed field by field (``frames.py``). The
forked child that runs one program is ``child.py``; ``fs.py`` makes and removes its
directories.
"""

import gc
import marshal
import os
import select
import signal
import sys


def _import_sibling(name):
    """Import a helper module that lives next to this script. -P keeps this dir off
    sys.path; it is added only while importing, so programs never see it, and the module
    is kept as ``_azr_worker_<name>`` so a program's ``import fs`` cannot get it."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        __import__(name)
    finally:
        del sys.path[0]
    module = sys.modules.pop(name)
    sys.modules["_azr_worker_" + name] = module
    return module


_child = _import_sibling("child")
_frames = _import_sibling("frames")
_messages = _import_sibling("messages")
_fs = _import_sibling("fs")
_reuse = _import_sibling("reuse")
_reuse.bind(_child, _frames, _messages, _import_sibling("state"))
_Conn, _describe = _messages.Conn, _child._describe
_enter_child, _run_function, _run_script = _child._enter_child, _child._run_function, _child._run_script
_sweep_as, _warm_up = _child._sweep_as, _child._warm_up


class _Worker:
    def __init__(self, conn, cfg):
        self.conn, self.cfg = conn, cfg
        self.counter = 0
        self.exiting = []  # (pid, dir) of finished children not reaped yet
        self.leaked_dirs = 0  # sandbox dirs rmtree could not remove (should stay 0)
        # Sandbox dirs live on tmpfs: rmdir on a disk filesystem costs milliseconds here.
        # With namespaces, our private tmpfs; without, prefer the host's /dev/shm.
        base = cfg["sbx_base"] or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else "/tmp")
        self.root = "%s/azr-sbx-%d" % (base, cfg["uid"] or os.getpid())
        os.makedirs(self.root, mode=0o755, exist_ok=True)
        # "reuse" needs the sandbox uid and a latch (``Reused.available``); without them,
        # every job gets a fresh child (the tier a request names is ignored).
        self.reused = _reuse.Reused(self) if _reuse.Reused.available(cfg) else None
        if self.reused is None:
            cfg["isolation"] = "process"
        uids = [cfg["uid"]] + ([self.reused.uid] if self.reused else [])
        self.watch = _fs.Watch(cfg["watch_dirs"], uids) if cfg["watch_dirs"] else None

    def _wait(self, rfd, want, kinds, timeout_s, nonce):
        cfg = self.cfg
        return _frames.wait_frames(rfd, want, kinds, timeout_s, nonce, cfg["max_reply_bytes"],
                                   cfg["max_output_chars"], _now)

    def _finish(self, pid, timed_out, clean, uid=None):
        """Kill what is left of the program, reap it, describe how it ended. ``pid`` None:
        already reaped (a reused child that ended by itself): only the sweep is left.
        ``uid``: the program's sandbox uid, if not the worker's own (a reused child's)."""
        if clean:  # all replies are in; the child is already exiting (after its own sweep)
            os.waitpid(pid, 0)
            return None
        status = 0
        if pid is not None:
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
                    _sweep_as(uid or self.cfg["uid"])
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

    def _spawn(self, body, wdir, cpu_s, capture, nonce):
        """Fork the program's child. ``capture``: (stdout, stderr) memfds, which have no
        path, so the program cannot swap them for a FIFO or a dir; the worker keeps its own
        fds and reads them with pread after the child is gone."""
        r, w = os.pipe()
        out_fd, err_fd = capture or (-1, -1)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                _enter_child(self.cfg, wdir, w, out_fd, err_fd, cpu_s)
                conn, last = _frames.FrameWriter(w, nonce), []

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
        return pid, r

    def run_function(self, code, inputs, repeats, entry, timeout_s):
        cfg = self.cfg
        n_exec = max(1, len(inputs)) * max(1, repeats)
        # CPU time is a backstop (the wall deadline is the real bound): generous, so that
        # a loaded machine or a multi-threaded program never turns a slow run into SIGKILL.
        cpu_s = int(timeout_s * n_exec) + 2
        wdir, nonce = self._fresh_dir(), os.urandom(_frames.NONCE_BYTES)
        pid, r = self._spawn(
            lambda emit: _run_function(emit, code, inputs, repeats, entry, cfg["max_output_chars"]),
            wdir, cpu_s, None, nonce)
        try:
            frames, err, timed_out = self._wait(r, len(inputs), "ci", timeout_s * max(1, repeats),
                                                nonce)
        finally:
            os.close(r)
        clean = err is None and (len(frames) == len(inputs) or frames[:1] and frames[0][0] == "c")
        if clean:  # the child swept its descendants before its last frame: reap it later
            self.exiting.append((pid, wdir))
            end = None
        else:
            end = self._finish(pid, timed_out, False)
            self._remove(wdir)
        return _frames.function_outcome(frames, len(inputs), err or end or "program ended early")

    def run_script(self, script, timeout_s):
        wdir, nonce = self._fresh_dir(), os.urandom(_frames.NONCE_BYTES)
        streams = (os.memfd_create("stdout", 0), os.memfd_create("stderr", 0))
        try:
            pid, r = self._spawn(lambda emit: _run_script(emit, script), wdir, int(timeout_s) + 2,
                                 streams, nonce)
            try:
                frames, err, timed_out = self._wait(r, 1, "x", timeout_s, nonce)
            finally:
                os.close(r)
            end = self._finish(pid, timed_out, err is None and len(frames) == 1)
            cap = self.cfg["max_stream_bytes"]
            out, errs = (os.pread(fd, cap, 0).decode("utf-8", "replace") for fd in streams)
        finally:
            for fd in streams:
                os.close(fd)
        self._remove(wdir)
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
                self._remove(wdir)
            else:
                left.append((pid, wdir))
        self.exiting = left
        # Anything else that became our child (an orphan, when we are a PID namespace's
        # init; a CLONE_PARENT child where seccomp is unavailable): reap it too.
        while True:
            try:
                pid = os.waitpid(-1, os.WNOHANG)[0]
            except ChildProcessError:
                break
            if not pid:
                break
            if self.reused is not None and pid == self.reused.pid:
                self.reused.reaped = True  # it ended by itself; discard() must not wait
            self.exiting = [(p, d) for p, d in self.exiting if p != pid or self._remove(d)]

    def _remove(self, wdir):
        if not _fs.rmtree(wdir):
            self.leaked_dirs += 1
        return False

    def stats(self):
        """What the worker holds now (for leak checks): children, fds, memory, IPC, dirs."""
        def count(path, skip_header=False):
            try:
                with open(path) as fh:
                    return max(0, len(fh.readlines()) - skip_header)
            except OSError:
                return -1
        try:
            with open("/proc/self/status") as fh:
                rss = next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            rss = -1
        live = int(self.reused is not None and self.reused.pid is not None)  # its dir
        alive = int(live and not self.reused.reaped)  # and its process
        return dict(pid=os.getpid(), rss_kb=rss, fds=len(os.listdir("/proc/self/fd")) - 2 * live,
                    exiting=len(self.exiting), sandbox_entries=len(os.listdir(self.root)) - live,
                    leaked_dirs=self.leaked_dirs, children=_children() - alive,
                    reused_child=live, reuse_discards=self.reused.discards if self.reused else 0,
                    reuse_last_why=self.reused.last_why if self.reused else None,
                    ipc=dict(shm=count("/proc/sysvipc/shm", 1), sem=count("/proc/sysvipc/sem", 1),
                             msg=count("/proc/sysvipc/msg", 1)))

    def serve(self):
        conn, idle = self.conn, select.poll()
        idle.register(conn.rfd, select.POLLIN)
        while True:
            self.reap(block=len(self.exiting) > 4 or not (conn.buf or idle.poll(0)))
            msg = conn.read()
            if msg is None:  # the pool closed our pipe
                if self.reused is not None:
                    self.reused.discard(False)
                self.reap(block=True)
                _fs.rmtree(self.root)
                return
            task_id, kind = msg[0], msg[1]
            try:
                if kind == "f":  # the last field: the job's isolation tier
                    reuse = msg[-1] == "reuse" and self.reused is not None and \
                        _reuse.may_stay_closed(msg[2], msg[3])
                    reply = (self.reused.run if reuse else self.run_function)(*msg[2:-1])
                elif kind == "s":
                    reply = self.run_script(*msg[2:])
                elif kind == "ping":
                    cfg = self.cfg
                    reply = dict(pid=os.getpid(), netns=cfg["netns"], uid=cfg["uid"],
                                 namespaces=cfg["ns"], seccomp=cfg["seccomp"],
                                 ipc_denied=cfg["ipc_denied"], rw_mounts=cfg["rw_mounts"],
                                 watch_dirs=cfg["watch_dirs"], isolation=cfg["isolation"])
                elif kind == "stats":
                    self.reap(block=True)
                    reply = self.stats()
                else:
                    reply = ("unknown request %r" % (kind,), [])
                conn.write((task_id, True, reply))
            except Exception as e:  # noqa: BLE001 - report and keep serving
                conn.write((task_id, False, "sandbox worker error: " + _describe(e)))
            if self.watch is not None and kind in ("f", "s"):
                self.watch.scrub()  # after the reply: off the caller's latency path


def _now():
    return _clock()


def _children():
    """Number of our live or zombie children (from /proc, by parent pid)."""
    me, n = os.getpid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, "rb") as fh:
                    n += int(fh.read().rsplit(b")", 1)[1].split()[1]) == me
            except (OSError, ValueError, IndexError):
                pass
    return n


def main():
    global _clock
    import time

    _clock = time.monotonic
    mode, cfg_hex = sys.argv[1], sys.argv[2]
    if mode == "setup":
        _import_sibling("setup")._setup(cfg_hex, os.path.abspath(__file__))
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
        setup = _import_sibling("setup")
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
