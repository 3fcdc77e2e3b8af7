"""What wraps a whole training run: the workdir lock, the SIGTERM guard, and one-line
errors for a full disk or a read-only workdir wherever the run writes (logs, TensorBoard,
config.json; checkpoint saves say more in trainer._save)."""

from __future__ import annotations

import errno
import functools
import os
import re

from azr_jax.errors import Preempted, UserError
from azr_jax.pipeline import preemption, setup, workdir_fs, workdir_lock
from azr_jax.config_rules import validate

# errno values that mean "the disk, the permissions or a path", not a bug: one line.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
               errno.EFBIG, errno.EIO, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
               errno.ENAMETOOLONG, errno.ELOOP}


# TensorStore (Orbax's writer) raises ValueError("RESOURCE_EXHAUSTED: ... [os_error_code='28']")
_TS_ERRNO = re.compile(r"os_error_code='?(\d+)")


def disk_error(e: BaseException):
    """The OSError with a disk/permission errno behind `e` (libraries may wrap it, or give
    only the errno in the message, as TensorStore does), or None."""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            return e
        found = _TS_ERRNO.search(str(e)) if not isinstance(e, OSError) else None
        if found and int(found.group(1)) in DISK_ERRNOS:
            code = int(found.group(1))
            return OSError(code, os.strerror(code))
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def newest_checkpoint(workdir: str, checkpoint_dir: str = "checkpoints"):
    """The newest complete step directory's number (None when there is none)."""
    try:
        names = workdir_fs.listdir(workdir_fs.join(workdir, checkpoint_dir))
    except OSError:
        return None
    steps = [int(n) for n in names if n.isdigit()]
    return max(steps) if steps else None


def disk_user_error(e: OSError, workdir: str) -> UserError:
    step = newest_checkpoint(workdir)
    kept = (f"the checkpoint of step {step} is intact" if step is not None
            else "no checkpoint was written yet")
    what = f"{e.filename}: " if e.filename else ""
    return UserError(f"training in {workdir} stopped: {what}{e.strerror or e}; {kept}; "
                     "fix it (free space, permissions) and rerun the same command to resume")


def close_all(*closers) -> None:
    """Call every closer (None entries skipped); re-raise the first failure after all ran,
    so one failing close (a log flush on a full disk) never leaves the sandbox pool open."""
    first = None
    for close in closers:
        if close is None:
            continue
        try:
            close()
        except Exception as e:  # noqa: BLE001 - re-raised below
            first = first or e
    if first is not None:
        raise first


def check_process_layout(cfg) -> None:
    """Refuse settings that cannot work with these JAX processes and devices, before any
    collective: several processes need staleness 0; the mesh, the model spec and every
    section's checks run here too (setup.preflight)."""
    import jax

    if jax.process_count() > 1 and cfg.trainer.staleness > 0:
        # two threads launching device programs could launch them in different orders on
        # different hosts, which deadlocks collectives
        raise UserError("trainer.staleness > 0 is not supported with several JAX processes; "
                        "use trainer.staleness=0")
    setup.preflight(cfg, jax.device_count())


def guarded_run(train_fn):
    """Decorate `train(cfg, workdir, ...)`: validate the config, lock the workdir, stop cleanly on SIGTERM, and
    turn disk and permission errors into a UserError."""

    @functools.wraps(train_fn)
    def wrapper(cfg, workdir, *args, **kwargs):
        validate(cfg)  # before the workdir is touched (callers may skip load_config)
        check_process_layout(cfg)
        with workdir_lock.hold(workdir), preemption.guard():
            try:
                return train_fn(cfg, workdir, *args, **kwargs)
            except (UserError, Preempted):
                raise
            except Exception as e:  # noqa: BLE001 - only disk errors are translated
                os_err = disk_error(e)
                if os_err is None:
                    raise
                raise disk_user_error(os_err, os.fspath(workdir)) from None

    return wrapper
