"""One Tokenizer interface over two backends: HF `tokenizers` (tokenizer.json) and SentencePiece.

A backend only turns text into ids and back; everything else (BOS/EOS/pad ids, special
tokens, chat template) lives in `Tokenizer` and is the same for every backend.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Protocol, Sequence

from azr_jax.tokenizer import chat


class Backend(Protocol):
    def encode(self, text: str, add_special_tokens: bool) -> list[int]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str: ...
    def token_to_id(self, token: str) -> Optional[int]: ...
    def id_to_token(self, token_id: int) -> Optional[str]: ...
    @property
    def vocab_size(self) -> int: ...
    def special_ids(self) -> set[int]: ...
    def save(self, out_dir: str) -> dict: ...  # writes model files, returns extra config keys


@dataclasses.dataclass
class Tokenizer:
    """Text <-> token ids, special tokens and the chat template of one checkpoint.

    Build one with `from_hf_dir`, `from_sentencepiece`, `from_gguf` or `tiny_tokenizer`
    (azr_jax.tokenizer).
    """

    backend: Backend
    bos_id: Optional[int] = None
    eos_ids: tuple[int, ...] = ()
    pad_id: Optional[int] = None
    chat_template: Optional[str] = None
    add_bos: bool = False  # prepend BOS when encode(add_special_tokens=True) and backend does not
    model_max_length: int = 131072

    # ---- ids ---------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`; special-token strings in the text map to their ids."""
        ids = self.backend.encode(text, add_special_tokens)
        if add_special_tokens and self.add_bos and self.bos_id is not None and ids[:1] != [self.bos_id]:
            ids = [self.bos_id] + ids
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens)

    @property
    def vocab_size(self) -> int:
        return self.backend.vocab_size

    @property
    def eos_id(self) -> Optional[int]:
        return self.eos_ids[0] if self.eos_ids else None

    def token_to_id(self, token: str) -> Optional[int]:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> Optional[str]:
        return self.backend.id_to_token(token_id)

    @property
    def special_ids(self) -> set[int]:
        return set(self.backend.special_ids())

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string -> id (control tokens such as <|im_end|>)."""
        return {self.backend.id_to_token(i): i for i in sorted(self.backend.special_ids())}

    def _token_str(self, token_id: Optional[int]) -> Optional[str]:
        return None if token_id is None else self.backend.id_to_token(token_id)

    @property
    def bos_token(self) -> Optional[str]:
        return self._token_str(self.bos_id)

    @property
    def eos_token(self) -> Optional[str]:
        return self._token_str(self.eos_id)

    @property
    def pad_token(self) -> Optional[str]:
        return self._token_str(self.pad_id)

    # ---- chat ----------------------------------------------------------------------------
    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    def apply_chat_template(self, messages, add_generation_prompt: bool = True, **variables) -> str:
        """Render messages with the checkpoint's own template (ChatML when it has none).

        The result already contains any BOS the template writes: encode it with
        add_special_tokens=False.
        """
        template = self.chat_template or chat.CHATML_TEMPLATE
        return chat.render(template, messages, add_generation_prompt,
                           bos_token=self.bos_token or "", eos_token=self.eos_token or "",
                           pad_token=self.pad_token or "", **variables)

    def save(self, out_dir: str) -> None:
        """Write tokenizer files (tokenizer.json or tokenizer.model + tokenizer_config.json)
        so that `transformers.AutoTokenizer.from_pretrained(out_dir)` loads them."""
        save_tokenizer(self, out_dir)


def save_tokenizer(tok: Tokenizer, out_dir: str) -> None:
    """Write the backend's model file plus tokenizer_config.json / special_tokens_map.json."""
    os.makedirs(out_dir, exist_ok=True)
    config = tok.backend.save(out_dir)
    specials = {k: v for k, v in (("bos_token", tok.bos_token), ("eos_token", tok.eos_token),
                                  ("pad_token", tok.pad_token)) if v is not None}
    config.update(specials)
    config.update(add_bos_token=tok.add_bos, add_eos_token=False, clean_up_tokenization_spaces=False,
                  model_max_length=tok.model_max_length)
    if tok.chat_template:
        config["chat_template"] = tok.chat_template
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(specials, f, indent=2, ensure_ascii=False)
