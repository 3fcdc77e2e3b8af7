"""Workdir file I/O through `etils.epath`, so a workdir is a local (or NFS-mounted) path or a
bucket (`gs://...`): config.json, metrics.jsonl, tasks.jsonl and report.html. Checkpoints go
through Orbax and TensorBoard events through tensorboardX, which take the same paths.

Local paths keep the append-and-fsync logs (a kill loses at most a torn last line). Bucket
objects cannot be appended to: there an append rewrites the object, and object writes are
atomic (no torn lines, no tmp file needed).
"""

from __future__ import annotations

import json
import os

from etils import epath

from azr_jax import jsonl


def is_remote(path) -> bool:
    """True for a bucket URI (gs://, s3://): no appends, no local file system calls."""
    return "://" in os.fspath(path)


def absolute(path) -> str:
    """`path` made absolute (local paths) or left as it is (bucket URIs)."""
    return os.fspath(path) if is_remote(path) else os.path.abspath(os.fspath(path))


def join(workdir, *names) -> str:
    return os.fspath(epath.Path(workdir).joinpath(*names))


def exists(path) -> bool:
    return epath.Path(path).exists()


def isfile(path) -> bool:
    return epath.Path(path).is_file()


def listdir(path) -> list[str]:
    """The names in directory `path` ([] when it does not exist)."""
    p = epath.Path(path)
    return sorted(c.name for c in p.iterdir()) if p.is_dir() else []


def makedirs(path) -> None:
    epath.Path(path).mkdir(parents=True, exist_ok=True)


def read_text(path) -> str:
    return epath.Path(path).read_text(encoding="utf-8")


def write_text_atomic(path, text: str) -> None:
    """Replace `path` with `text` so a reader never sees half of it."""
    if is_remote(path):
        epath.Path(path).write_text(text, encoding="utf-8")
        return
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _parse_lines(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn by a kill mid-write (local logs only)
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_log(path) -> list[dict]:
    """All complete rows of a run log; [] when it does not exist yet."""
    if not is_remote(path):
        return jsonl.read_log(os.fspath(path))
    return _parse_lines(read_text(path)) if exists(path) else []


def append_rows(path, rows: list[dict]) -> None:
    if not is_remote(path):
        jsonl.append_rows(os.fspath(path), rows)
        return
    old = read_text(path) if exists(path) else ""
    write_text_atomic(path, old + "".join(json.dumps(r) + "\n" for r in rows))


def truncate_log(path, step: int) -> None:
    """Drop rows whose `step` is after `step` (see `jsonl.truncate_log`)."""
    if not is_remote(path):
        jsonl.truncate_log(os.fspath(path), step)
        return
    if exists(path):
        kept = [r for r in read_log(path) if r.get("step", 0) <= step]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
