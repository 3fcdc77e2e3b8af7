"""Optional Weights & Biases logging (`logging.wandb=true`, off by default), as the official
AZR trainer logs: the config once, every step's metrics, and sample texts as tables.

`wandb` is an optional dependency (`pip install -e .[wandb]`), imported only when a run
turns this on. The run id is derived from the workdir, so a resumed run continues the same
W&B run. `logging.wandb_mode=offline` writes WORKDIR/wandb/ only (`wandb sync` uploads it).
"""

from __future__ import annotations

import hashlib
import importlib.util

from azr_jax.errors import UserError
from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.metrics import PROPOSAL_FIELDS, SOLVE_FIELDS

MODES = ("online", "offline", "disabled")


def run_id(workdir: str) -> str:
    return hashlib.sha256(workdir_fs.absolute(workdir).encode()).hexdigest()[:16]


def check(mode: str) -> None:
    """Before the workdir is touched: a known mode, and the package installed."""
    if mode not in MODES:
        raise UserError(f"logging.wandb_mode={mode!r} is not one of {', '.join(MODES)}")
    if importlib.util.find_spec("wandb") is None:
        raise UserError("logging.wandb=true needs the wandb package: "
                        "pip install -e '.[wandb]' (or logging.wandb=false)")


class WandbLogger:
    """The MetricsWriter's extra logger: write_config, write, write_samples, close."""

    def __init__(self, workdir: str, project: str, mode: str, name: str = ""):
        check(mode)
        import wandb  # optional dependency, only for runs that turn W&B on

        self._wandb = wandb
        self.run = wandb.init(project=project, name=name or None, mode=mode,
                              dir=None if workdir_fs.is_remote(workdir) else workdir_fs.absolute(workdir),
                              id=run_id(workdir),
                              resume="allow", settings=wandb.Settings(console="off"))

    def write_config(self, config: dict):
        self.run.config.update(config, allow_val_change=True)

    def write(self, step: int, row: dict):
        scalars = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        self.run.log(scalars, step=int(step))

    def write_samples(self, step: int, task_rows: list, solve_rows: list):
        for key, rows, fields in (("samples/propose", task_rows, PROPOSAL_FIELDS),
                                  ("samples/solve", solve_rows, SOLVE_FIELDS)):
            if rows:
                table = self._wandb.Table(columns=["step", *fields])
                for r in rows:
                    table.add_data(int(step), *[str(r.get(f, "")) for f in fields])
                self.run.log({key: table}, step=int(step))

    def close(self):
        # In offline mode finish() returns before wandb's service has written the run file;
        # teardown() waits for it, so WORKDIR/wandb/ is complete when the trainer returns.
        self.run.finish()
        self._wandb.teardown()
