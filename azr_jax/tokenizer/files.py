"""HF tokenizer directories: the `tokenizers` backend and `from_hf_dir` (saving is
`base.save_tokenizer`)."""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from azr_jax.errors import UserError
from azr_jax.tokenizer.base import Tokenizer
from azr_jax.tokenizer.sp import SentencePieceBackend


class TokenizersBackend:
    """A `tokenizers.Tokenizer` (tokenizer.json)."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> Optional[int]:
        return self.tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> Optional[str]:
        return self.tok.id_to_token(token_id)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def special_ids(self) -> set[int]:
        return {i for i, t in self.tok.get_added_tokens_decoder().items() if t.special}

    def save(self, out_dir: str) -> dict:
        self.tok.save(os.path.join(out_dir, "tokenizer.json"))
        return {"tokenizer_class": "PreTrainedTokenizerFast"}


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _token_content(value) -> Optional[str]:
    return value.get("content") if isinstance(value, dict) else value


def _as_tuple(value) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value),)


def _chat_template(path: str, config: dict) -> Optional[str]:
    jinja_file = os.path.join(path, "chat_template.jinja")
    if os.path.exists(jinja_file):
        with open(jinja_file, encoding="utf-8") as f:
            return f.read()
    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template}
        template = named.get("default") or next(iter(named.values()), None)
    return template


def from_hf_dir(path: str) -> Tokenizer:
    """Tokenizer of a HF checkpoint directory (tokenizer.json, or tokenizer.model)."""
    if not os.path.isdir(path):
        raise UserError(f"tokenizer directory {path!r} does not exist")
    config = _read_json(os.path.join(path, "tokenizer_config.json"))
    json_file, sp_file = os.path.join(path, "tokenizer.json"), os.path.join(path, "tokenizer.model")
    if os.path.exists(json_file):
        import tokenizers

        backend = TokenizersBackend(tokenizers.Tokenizer.from_file(json_file))
    elif os.path.exists(sp_file):
        backend = SentencePieceBackend.from_file(sp_file)
    else:
        raise UserError(f"{path!r} has neither tokenizer.json nor tokenizer.model")

    def token_id(key):
        content = _token_content(config.get(key))
        return None if content is None else backend.token_to_id(content)

    eos_ids = _as_tuple(token_id("eos_token"))
    generation = _read_json(os.path.join(path, "generation_config.json"))
    model_config = _read_json(os.path.join(path, "config.json"))
    for extra in (_as_tuple(generation.get("eos_token_id")), _as_tuple(model_config.get("eos_token_id"))):
        eos_ids += tuple(i for i in extra if i not in eos_ids)
    bos_id = token_id("bos_token")
    if bos_id is None:
        bos_id = generation.get("bos_token_id", model_config.get("bos_token_id"))
    pad_id = token_id("pad_token")
    default_bos = getattr(backend, "default_add_bos", False)
    max_len = config.get("model_max_length")
    return Tokenizer(backend=backend, bos_id=bos_id, eos_ids=eos_ids, pad_id=pad_id,
                     chat_template=_chat_template(path, config),
                     add_bos=bool(config.get("add_bos_token", default_bos)),
                     model_max_length=int(max_len) if isinstance(max_len, (int, float)) and max_len < 1e12 else 131072)
