"""One trainer per workdir: an exclusive lock on WORKDIR/.azr-train.lock for the whole run.

Two trainers on one workdir would interleave metrics.jsonl and tasks.jsonl and overwrite
each other's checkpoints, so the second one stops at once with an error naming the workdir
and the holder (pid and host, which the holder writes into the lock file).

The lock is a `flock` on that file: the kernel drops it when the holder's last descriptor
closes, which includes death by SIGKILL, so a stale lock file never blocks a restart. The
descriptor is close-on-exec and the sandbox workers start with `close_fds`, so no child
keeps it. The file itself stays (unlinking it would race with a waiting locker).

Shared filesystems: on NFS, Linux turns `flock` into an NFS byte-range lock, which works
across machines when the server's lock service does (NFSv4, or v3 with lockd); a mount with
`nolock` makes locks local to each machine. When the filesystem refuses locks (ENOLCK,
EOPNOTSUPP) the run continues unlocked with a warning. Workdirs on object stores
(gs://...) have no locks at all: they are not locked.

In a multi-process run every process shares the workdir: only process 0 takes the lock and
broadcasts the outcome, so a run's own processes never lock each other out, and every
process of a second run stops with the same error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
from typing import Iterator, Optional

from azr_jax.errors import UserError
from azr_jax.pipeline.workdir_layout import LOCK_FILE


def _holder(fd: int) -> str:
    """Who holds the lock, as written into the file by the holder ("pid N on host H")."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if len(text) >= 2 and text[0].isdigit():
        return f"pid {text[0]} on host {text[1]}"
    return "a process that has not written its pid yet"


class WorkdirLock:
    """`acquire()` takes the lock or raises UserError; `release()` (or process exit) drops it."""

    def __init__(self, workdir: str):
        self.workdir = os.fspath(workdir)
        self.path = os.path.join(self.workdir, LOCK_FILE)
        self._fd: Optional[int] = None

    def acquire(self) -> "WorkdirLock":
        try:
            os.makedirs(self.workdir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UserError(f"workdir {self.workdir} is not usable: cannot create "
                            f"{e.filename or self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"workdir {self.workdir} is in use by another trainer ({holder}); "
                            "wait for it to finish or stop it, or use another --workdir") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise UserError(f"cannot lock workdir {self.workdir}: {e.strerror}") from None
            print(f"warning: the filesystem of {self.workdir} does not support locks "
                  f"({e.strerror}); nothing stops a second trainer on this workdir",
                  file=sys.stderr)
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # the note is for error messages only; the lock itself is held
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _is_remote(workdir: str) -> bool:
    return "://" in os.fspath(workdir)


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[Optional[WorkdirLock]]:
    """Hold the workdir's lock for the body; process 0 locks, every process learns the result."""
    import jax

    lock, error = None, None
    if jax.process_index() == 0 and not _is_remote(workdir):
        try:
            lock = WorkdirLock(workdir).acquire()
        except UserError as e:
            error = e
    if jax.process_count() > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
        if error is None and not int(ok):
            error = UserError(f"process 0 could not lock workdir {workdir} (see its error)")
    if error is not None:
        raise error
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
