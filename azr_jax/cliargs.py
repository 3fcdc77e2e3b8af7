"""Command-line argument readers shared by `azr-jax`, the demo and the benchmarks.

argparse `type=` functions for numeric flags: one place that rejects NaN, inf, negatives
and zero where they mean nothing. A rejected value is one line through the CLI's parser
(`error: azr-jax eval-samples: argument --k: ...`). `config_overrides` reads the
`--config.section.key=value` flags. Stdlib only (the executor's CLI uses it).
"""

from __future__ import annotations

import argparse
import math

from azr_jax.errors import UserError


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def probability(text: str) -> float:
    """A value in (0, 1] (top-p)."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def positive_int_list(text: str) -> tuple[int, ...]:
    """"1,10,100" -> (1, 10, 100); every item an integer >= 1."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    try:
        return tuple(positive_int(t) for t in items)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (in {text!r})") from None


def config_overrides(extra: list[str]) -> list[str]:
    """`--config.a.b=v` or `--config.a.b v` -> ["a.b=v"]."""
    out, i = [], 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--config."):
            raise UserError(f"unexpected argument {arg!r}; config overrides look like "
                            "--config.section.key=value")
        if "=" in arg:
            out.append(arg[len("--config."):])
            i += 1
        elif i + 1 < len(extra):
            out.append(f"{arg[len('--config.'):]}={extra[i + 1]}")
            i += 2
        else:
            raise UserError(f"config override {arg!r} has no value")
    return out


def recipe_parser(doc: str, config: str, workdir: str | None,
                  workdir_help: str = "") -> argparse.ArgumentParser:
    """The flags of the one-command entry points (`make demo`, `make learn`): --config,
    --workdir, --steps; the rest are --config.section.key=value overrides. A caller whose
    workdir default is made at run time (workdir None) says what it will be in workdir_help."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", default=config)
    parser.add_argument("--workdir", default=workdir, help=workdir_help or f"default: {workdir}")
    parser.add_argument("--steps", type=positive_int, default=None)
    return parser


def recipe_overrides(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The config overrides of a `recipe_parser` command line (--steps included)."""
    overrides = config_overrides(extra)
    if args.steps is not None:
        overrides.append(f"trainer.steps={args.steps}")
    return overrides
