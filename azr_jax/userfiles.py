"""The user's files: one-line errors for inputs that cannot be read and outputs that cannot
be written, shared by every command.

- `check_output_file` / `check_output_dir`: called by a command before its work starts, so
  an unwritable output path fails in a second, not after an hour of scoring. They create
  missing parent directories (as writing would) and probe with a real write (permission
  bits say nothing for root or on a read-only mount).
- `check_input_file`, `read_error`: a missing file, a directory, an unreadable file, bytes
  that are not UTF-8 (with the line), a `.gz` that is not gzip; each becomes a UserError.
- `cache_root`: where azr_jax keeps what it derives on this machine (converted weights, the
  CPU kernel): ``$AZR_JAX_CACHE``, default ``~/.cache/azr_jax``.

Stdlib only: the executor's CLI imports it.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib

from azr_jax.errors import UserError

# what a damaged .gz raises while reading: not gzip at all, cut short, bad deflate data
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def cache_root() -> str:
    return os.environ.get("AZR_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "azr_jax")


def check_output_file(path: str, flag: str = "output") -> str:
    """`path` if a file can be written there (parents are created); else UserError."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a directory; give a file path")
    parent = os.path.dirname(os.path.abspath(path))
    _make_dirs(parent, flag, path)
    try:
        if os.path.exists(path):
            with open(path, "ab"):  # appends nothing: the content stays until the real write
                pass
        else:
            fd, probe = tempfile.mkstemp(dir=parent, prefix=".azr-write-probe-")
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write {flag} {path}: {e.strerror}") from None
    return path


def check_output_dir(path: str, flag: str = "output") -> str:
    """`path` if files can be written inside it (it is created when missing); else UserError."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path} exists and is not a directory")
    _make_dirs(path, flag, path)
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".azr-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write into {flag} {path}: {e.strerror}") from None
    return path


def _make_dirs(directory: str, flag: str, path: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError:
        raise UserError(f"cannot write {flag} {path}: {directory} is not a directory") from None
    except OSError as e:
        raise UserError(f"cannot write {flag} {path}: cannot create {directory}: "
                        f"{e.strerror}") from None


def check_input_file(path: str, missing: str = "{path}: no such file") -> str:
    """`path` if it names an existing regular file; `missing` (with {path}) otherwise."""
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, expected a file")
    if not os.path.exists(path):
        raise UserError(missing.format(path=path))
    return path


def _decode_position(path: str) -> str:
    """`line N` of the first byte that is not UTF-8 (re-reads the file; error path only)."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as fh:
            data = fh.read()
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return f"line {line}: byte 0x{data[e.start]:02x}"
    except (OSError, *GZIP_ERRORS):
        pass
    return "somewhere"


def read_error(path: str, e: BaseException) -> UserError:
    """The one-line UserError for an exception raised while reading `path` as text."""
    if isinstance(e, UnicodeDecodeError):
        return UserError(f"{path}: not UTF-8 text ({_decode_position(path)}); "
                         "save the file as UTF-8")
    if isinstance(e, GZIP_ERRORS):
        return UserError(f"{path}: not a valid gzip file ({e or type(e).__name__}); "
                         "a .gz file must be gzip-compressed and complete")
    if isinstance(e, OSError):
        return UserError(f"cannot read {path}: {e.strerror or e}")
    raise TypeError(f"not a read error: {e!r}")


READ_ERRORS = (UnicodeDecodeError, OSError, *GZIP_ERRORS)


def read_text(path: str, missing: str = "{path}: no such file") -> str:
    """The whole UTF-8 text of `path` (`.gz` decompressed), or a one-line UserError."""
    check_input_file(path, missing)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return fh.read()
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except READ_ERRORS as e:
        raise read_error(path, e) from None
