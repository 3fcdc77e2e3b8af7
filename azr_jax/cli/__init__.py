"""The `azr-jax` entry point: parse arguments, then call library functions.

One module per command group in this package (``cli/<group>.py``) exposes
``register(subparsers)``; ``COMMAND_MODULES`` lists them and they are imported lazily, so
`azr-jax execute` never pays for importing JAX. The library below never imports ``cli``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from azr_jax.errors import Preempted, UserError

# subcommand name -> module with `register(subparsers)` adding that subcommand.
COMMAND_MODULES: dict[str, str] = {
    "generate": "azr_jax.cli.generate",
    "execute": "azr_jax.cli.execute",
    "score-cruxeval": "azr_jax.cli.execute",
    "train": "azr_jax.cli.train",
    "report": "azr_jax.cli.train",
    "export-hf": "azr_jax.cli.export",
    "eval": "azr_jax.cli.evals",
    "eval-samples": "azr_jax.cli.evals",
    "data": "azr_jax.cli.evals",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`error: azr-jax eval-samples: argument --k:
    ...`) like every other user error; subparsers inherit the class."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="azr-jax", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for module_name in dict.fromkeys(wanted):
        importlib.import_module(module_name).register(subparsers)
    return parser


def _quiet_shutdown() -> None:
    """After a user error's line: libraries' background threads and exit hooks that trip
    over the same cause (a TensorBoard flush on a full disk) stay silent instead of adding
    tracebacks below it."""
    import threading

    sys.unraisablehook = lambda unraisable: None
    threading.excepthook = lambda args: None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    try:  # a bad flag: the parser printed its one line; return its code (main() is a function)
        args, extra = parser.parse_known_args(argv)
        if extra:  # only subcommands that set accepts_extra=True take free-form options
            if not getattr(args, "accepts_extra", False):
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            args.extra = extra
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        _quiet_shutdown()
        return 2
    except Preempted as e:  # SIGTERM: the last finished step is saved
        print(str(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

