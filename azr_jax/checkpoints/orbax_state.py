"""Orbax checkpoints of the whole train state plus the trainer's own JSON-able state.

Layout: <directory>/<step>/{state, trainer}. Orbax writes each step into a temporary
directory and renames it when complete, so a save killed half-way never hides the previous
good step (a leftover tmp directory is ignored and removed on the next start).
`restore_newest_intact` resumes from the newest step that restores, setting damaged newer
steps aside as `<step>.corrupt` (kept for inspection, ignored by Orbax) and saying so.
Restore takes an abstract train state whose leaves carry shardings (see
`azr_jax.rl.update.abstract_train_state`), so a checkpoint saved on 8 devices restores
onto 4 or 1 or any other mesh.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
from typing import Any, Callable, Optional

import orbax.checkpoint as ocp

from azr_jax.errors import UserError


class _NoOrbaxTracebacks(logging.Filter):
    """Orbax logs a background save's failure with a traceback before `wait()` re-raises
    it; the trainer reports that error on one line, so the log keeps one line too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and "orbax" in record.pathname:
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = str(record.getMessage())[:300], ()
        return True


class _NoTensorStoreLeftovers(logging.Filter):
    """asyncio reports the abandoned reads of a damaged checkpoint ("Future exception was
    never retrieved", with a traceback) after `restore` already raised their error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and "tensorstore_spec" in str(exc))


_ABSL_FILTER, _ASYNCIO_FILTER = _NoOrbaxTracebacks(), _NoTensorStoreLeftovers()


def _quiet_closed_loop_hook(previous):
    """A sys.unraisablehook that drops asyncio's "Event loop is closed" (what Orbax's
    abandoned futures raise after a failed read of a damaged checkpoint, while being
    collected) and passes everything else on."""

    def hook(unraisable):
        e = unraisable.exc_value
        if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
            return
        previous(unraisable)

    hook.azr_quiet = True
    return hook


def _install_quiet_hooks() -> None:
    logging.getLogger("absl").addFilter(_ABSL_FILTER)  # idempotent: the same objects
    logging.getLogger("asyncio").addFilter(_ASYNCIO_FILTER)
    if not getattr(sys.unraisablehook, "azr_quiet", False):
        sys.unraisablehook = _quiet_closed_loop_hook(sys.unraisablehook)


class TrainCheckpointer:
    """Save/restore (train_state, trainer_state) by step; keeps the newest `keep` steps."""

    def __init__(self, directory: str, keep: Optional[int] = 3, async_save: bool = True):
        directory = os.fspath(directory)  # a bucket URI (gs://) stays as it is
        self.directory = directory if "://" in directory else os.path.abspath(directory)
        _install_quiet_hooks()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "trainer"))

    def save(self, step: int, train_state, trainer_state: Optional[dict] = None) -> None:
        """Start saving (returns at once when async; call `wait()` to block until on disk).

        Raises OSError(ENOSPC) before writing anything when the disk clearly lacks room:
        a save that runs out of space half-way fails in background threads, noisily."""
        self._check_space(train_state)
        self._manager.save(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardSave(train_state),
            trainer=ocp.args.JsonSave(trainer_state or {})))

    def _check_space(self, train_state) -> None:
        import jax

        latest = self.latest_step()
        need = _tree_size(self.step_path(latest)) if latest is not None else 0
        if not need:  # nothing saved yet: the arrays' bytes (this process's share)
            need = sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(train_state))
            need //= max(1, jax.process_count())
        need = int(need * 1.1) + (64 << 10)
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return  # cannot tell (e.g. a remote path): let the save itself find out
        if free < need:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({free >> 10} KiB free, "
                          f"a checkpoint needs about {need >> 10} KiB)", self.directory)

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def step_path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def restore(self, step: Optional[int], abstract_train_state) -> tuple[Any, dict]:
        """(train_state, trainer_state) of `step` (None: the latest), placed on the shardings
        of `abstract_train_state` (a tree of jax.ShapeDtypeStruct with .sharding)."""
        self.wait()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise UserError(f"no checkpoint found in {self.directory}")
        if step not in self.all_steps():
            raise UserError(f"no checkpoint for step {step} at {self.step_path(step)}; "
                            f"available steps: {self.all_steps() or 'none'}")
        try:
            target, rebuild = self._target(step, abstract_train_state)
            out = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), trainer=ocp.args.JsonRestore()))
            state = rebuild(out.state)
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
            raise UserError(f"checkpoint {self.step_path(step)} is corrupted or does not match "
                            f"the model: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
        return state, dict(out.trainer or {})

    def _target(self, step: int, abstract):
        """(restore target, restored -> state). Orbax needs the saved tree's exact
        structure, so a top-level leaf that older code saved and the state no longer has
        (TrainState.rng, dropped 2026-12) is read replicated and then discarded."""
        import dataclasses

        import jax

        saved = getattr(self._manager.item_metadata(step)["state"], "tree", None) or {}
        if not dataclasses.is_dataclass(abstract):
            return abstract, lambda state: state
        fields = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(abstract)}
        retired = set(saved) - set(fields)
        if not retired:
            return abstract, lambda state: state
        rep = jax.sharding.NamedSharding(jax.tree.leaves(abstract)[0].sharding.mesh,
                                         jax.sharding.PartitionSpec())
        extra = {k: jax.ShapeDtypeStruct(saved[k].shape, saved[k].dtype, sharding=rep)
                 for k in retired}
        return ({**fields, **extra},
                lambda state: abstract.replace(**{k: state[k] for k in fields}))

    def restore_newest_intact(self, abstract_train_state,
                              check: Optional[Callable[[dict], None]] = None,
                              set_aside: bool = True, action: str = "resuming from"
                              ) -> tuple[int, Any, dict]:
        """(step, train_state, trainer_state) of the newest step that restores.

        `check(trainer_state)` may raise (KeyError/ValueError/TypeError) to reject a step
        whose trainer state is unusable. Newer damaged steps are renamed `<step>.corrupt`
        when `set_aside` (only one process of a multi-process run should do that), so a
        later save of the same step number does not collide with them. Raises UserError
        when no step restores.
        """
        self.wait()
        failures: list[tuple[int, str]] = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                state, trainer_state = self.restore(step, abstract_train_state)
                if check is not None:
                    check(trainer_state)
            except (UserError, KeyError, ValueError, TypeError) as e:
                failures.append((step, _one_line(e)))
                continue
            if failures:
                self._report_fallback(failures, step, set_aside, action)
            return step, state, trainer_state
        if not failures:
            raise UserError(f"no checkpoint found in {self.directory}")
        why = "; ".join(f"step {s}: {m}" for s, m in failures)
        raise UserError(f"no intact checkpoint in {self.directory} ({why}); move the "
                        "directory away to start the run over")

    def _report_fallback(self, failures, step: int, set_aside: bool, action: str) -> None:
        bad = ", ".join(str(s) for s, _ in failures)
        moved = ""
        if set_aside:
            names = [self._set_aside(s) for s, _ in failures]
            moved = f"; set aside as {', '.join(names)}"
        print(f"warning: checkpoint step {bad} in {self.directory} is unreadable "
              f"({failures[0][1]}){moved}; {action} step {step}, the newest intact one",
              file=sys.stderr, flush=True)

    def _set_aside(self, step: int) -> str:
        src = self.step_path(step)
        dst, n = src + ".corrupt", 1
        while os.path.exists(dst):
            n += 1
            dst = f"{src}.corrupt{n}"
        os.replace(src, dst)
        reload = getattr(self._manager, "reload", None)
        if reload is not None:  # the manager caches its step list
            reload()
        return os.path.basename(dst)

    def wait(self) -> None:
        """Block until pending asynchronous saves are committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _one_line(e: BaseException) -> str:
    text = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    return text if isinstance(e, UserError) else f"{type(e).__name__}: {text}"


def _tree_size(path: str) -> int:
    """Bytes of the files under `path` (0 when it cannot be read)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
