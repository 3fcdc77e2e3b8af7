"""Opening GGUF files (llama.cpp's format): both the weights (`checkpoints.gguf_file`) and
the vocabulary (`tokenizer.gguf_vocab`) are read from one, so the reader sits below both."""

from __future__ import annotations

import os

from azr_jax.errors import UserError


def check_gguf_magic(path: str) -> None:
    """Cheap validity check (the full reader parses all metadata: seconds for a big vocab)."""
    if not os.path.isfile(path):
        raise UserError(f"GGUF file {path!r} does not exist")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{path!r} is not a readable GGUF file (no GGUF magic)")


def open_gguf(path: str):
    import gguf  # only GGUF users pay for importing it

    check_gguf_magic(path)
    try:
        return gguf.GGUFReader(path, "r")
    except Exception as e:  # the reader raises ValueError/struct errors on non-GGUF files
        raise UserError(f"{path!r} is not a readable GGUF file: {e}") from None
