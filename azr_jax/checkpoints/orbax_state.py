"""Orbax checkpoints of the whole train state plus the trainer's own JSON-able state.

Layout: <directory>/<step>/{state, trainer}. Orbax writes each step into a temporary
directory and renames it when complete, so a save killed half-way never hides the previous
good step (a leftover tmp directory is ignored and removed on the next start).
Restore takes an abstract train state whose leaves carry shardings (see
`azr_jax.rl.update.abstract_train_state`), so a checkpoint saved on 8 devices restores
onto 4 or 1 or any other mesh.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import orbax.checkpoint as ocp

from azr_jax.errors import UserError


class TrainCheckpointer:
    """Save/restore (train_state, trainer_state) by step; keeps the newest `keep` steps."""

    def __init__(self, directory: str, keep: Optional[int] = 3, async_save: bool = True):
        directory = os.fspath(directory)  # a bucket URI (gs://) stays as it is
        self.directory = directory if "://" in directory else os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "trainer"))

    def save(self, step: int, train_state, trainer_state: Optional[dict] = None) -> None:
        """Start saving (returns at once when async; call `wait()` to block until on disk)."""
        self._manager.save(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardSave(train_state),
            trainer=ocp.args.JsonSave(trainer_state or {})))

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
            out = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_train_state),
                trainer=ocp.args.JsonRestore()))
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
            raise UserError(f"checkpoint {self.step_path(step)} is corrupted or does not match "
                            f"the model: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
        return out.state, dict(out.trainer or {})

    def wait(self) -> None:
        """Block until pending asynchronous saves are committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
