"""Reading JSONL input files, shared by every command that takes one.

One place for: opening plain or ``.gz`` text, a clear error for a missing file (or a
directory, an unreadable file, non-UTF-8 bytes, a ``.gz`` that is not gzip), skipping
blank lines, and naming the file and line of a row that is not valid JSON or not an object.
Callers check their own fields and name the line with ``where``.

Stdlib only: the executor's CLI imports it, and nothing on that path may pull in numpy/jax.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Callable, Iterator, TextIO

from azr_jax import userfiles
from azr_jax.errors import UserError


def open_text(path: str, errors: str = "strict") -> TextIO:
    """UTF-8 text of ``path``, decompressed on the fly when it ends in ``.gz``."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors=errors)
    return open(path, encoding="utf-8", errors=errors)


def where(path: str, lineno: int) -> str:
    """The location prefix of a message about line ``lineno`` of ``path`` (``f.jsonl:3``)."""
    return f"{path}:{lineno}"


def iter_objects(path: str, *, missing: str = "{path}: no such file",
                 expect: str = "", errors: str = "strict",
                 on_problem: Callable[[str], None] | None = None) -> Iterator[tuple[int, dict]]:
    """``(lineno, row)`` for every non-blank line of a JSONL file (1-based line numbers).

    ``missing`` is the ``UserError`` message (with ``{path}``) when the file does not exist;
    ``expect`` (what a row must hold) is added to the message for a line that is no object.
    A line that is not valid JSON or not a JSON object raises ``UserError`` naming file and
    line, or, with ``on_problem``, is passed to it as that message and skipped (keep-going
    mode: report every bad line, process the good ones).
    """
    userfiles.check_input_file(path, missing)
    try:
        with open_text(path, errors=errors) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    problem = f"malformed JSON ({e.msg} at column {e.colno})"
                else:
                    if isinstance(row, dict):
                        yield lineno, row
                        continue
                    problem = f"expected a JSON object, got {type(row).__name__}"
                    problem += f" ({expect})" if expect else ""
                message = f"{where(path, lineno)}: {problem}"
                if on_problem is None:
                    raise UserError(message)
                on_problem(message)
    except userfiles.READ_ERRORS as e:  # not UTF-8, not gzip, unreadable: one line
        raise userfiles.read_error(path, e) from None


def write_rows(path: str, rows) -> None:
    """Write one JSON line per row (replacing ``path``); ``UserError`` when it cannot."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
    except OSError as e:
        raise UserError(f"cannot write output file {path}: {e.strerror}") from None


# --- append-only run logs (metrics.jsonl, tasks.jsonl) --------------------------------


def append_rows(path: str, rows: list[dict]) -> None:
    """Append one JSON line per row and fsync, so a kill loses at most a torn last line."""
    with open(path, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_log(path: str) -> list[dict]:
    """All complete rows of an append-only log; [] when it does not exist yet.

    Lines that do not parse (torn by a kill mid-write) are skipped silently.
    """
    if not os.path.exists(path):
        return []
    return [row for _, row in iter_objects(path, errors="replace", on_problem=lambda _: None)]


def truncate_log(path: str, step: int) -> None:
    """Atomically drop rows whose ``step`` is after ``step`` (rows without one count as 0):
    what a run killed after its last checkpoint wrote. No-op when the log does not exist."""
    if not os.path.exists(path):
        return
    kept = [row for row in read_log(path) if row.get("step", 0) <= step]
    write_rows(path + ".tmp", kept)
    os.replace(path + ".tmp", path)
