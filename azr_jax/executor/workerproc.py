"""One sandbox worker process as the pool sees it: start it, talk to it, kill it."""

from __future__ import annotations

import collections
import marshal
import os
import subprocess
import sys

from azr_jax.executor.worker.fs import rmtree
from azr_jax.executor.sandbox_types import REUSE_UID_OFFSET, SandboxConfig

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker", "serve.py")


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
            uid=base, preload=list(cfg.preload_modules), isolation=cfg.isolation,
            reuse_uid_offset=REUSE_UID_OFFSET)
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
        self.sent: collections.deque = collections.deque()  # (task_id, pool _Task) in flight
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
        if self.uid is not None:  # its per-program children's uid, then its reused child's
            sweep_uid(self.uid)
            sweep_uid(self.uid + REUSE_UID_OFFSET)
        # Without a mount namespace the worker's sandbox dirs live on the host: remove what a
        # killed worker could not (with one, they vanished with its private tmpfs).
        for base in ("/dev/shm", "/tmp"):
            rmtree(self.sandbox_root(base))

    def sandbox_root(self, base):
        """The worker's sandbox root under ``base`` (named as ``worker/serve.py`` names it)."""
        return "%s/azr-sbx-%d" % (base, self.uid if self.uid is not None else self.proc.pid)


def sweep_uid(uid: int) -> None:
    """Kill every process running as ``uid`` (a sandbox uid), from a tiny helper process."""
    code = ("import os,signal\nos.setuid(%d)\nfor _ in range(64):\n  try: os.kill(-1, 9)\n"
            "  except OSError: break\n") % uid
    subprocess.run([sys.executable, "-S", "-s", "-P", "-c", code], env={}, timeout=30, check=False)
