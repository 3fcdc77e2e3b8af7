"""SentencePiece backend (`tokenizer.model` files, e.g. Llama 2 style checkpoints)."""

from __future__ import annotations

import os
import shutil
from typing import Optional, Sequence

from azr_jax.errors import UserError
from azr_jax.tokenizer.base import Tokenizer


class SentencePieceBackend:
    default_add_bos = True  # SentencePiece Llama checkpoints prepend BOS by convention

    def __init__(self, sp, path: str):
        self.sp, self.path = sp, path
        n = sp.get_piece_size()
        self._special = {i for i in range(n) if sp.is_control(i)}
        self._by_piece = {sp.id_to_piece(i): i for i in range(n)}

    @classmethod
    def from_file(cls, path: str) -> "SentencePieceBackend":
        import sentencepiece as spm

        if not os.path.exists(path):
            raise UserError(f"SentencePiece model {path!r} does not exist")
        sp = spm.SentencePieceProcessor()
        try:
            sp.load(path)
        except Exception as e:  # sentencepiece raises OSError/RuntimeError on bad files
            raise UserError(f"{path!r} is not a SentencePiece model: {e}") from None
        return cls(sp, path)

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        # Control-token strings in the text (e.g. "<s>") become their ids, as in HF tokenizers.
        ids: list[int] = []
        rest = text
        specials = sorted((self.sp.id_to_piece(i) for i in self._special), key=len, reverse=True)
        while rest:
            hits = [(rest.find(s), s) for s in specials if s and rest.find(s) >= 0]
            if not hits:
                ids += self.sp.encode(rest)
                break
            pos, piece = min(hits, key=lambda h: (h[0], -len(h[1])))
            if pos:
                ids += self.sp.encode(rest[:pos])
            ids.append(self._by_piece[piece])
            rest = rest[pos + len(piece):]
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        if skip_special_tokens:
            return self.sp.decode([i for i in ids if i not in self._special])
        out, run = [], []
        for i in ids:  # sentencepiece drops control pieces on decode: put them back
            if i in self._special:
                out.append(self.sp.decode(run) + self.sp.id_to_piece(i))
                run = []
            else:
                run.append(i)
        return "".join(out) + self.sp.decode(run)

    def token_to_id(self, token: str) -> Optional[int]:
        return self._by_piece.get(token)

    def id_to_token(self, token_id: int) -> Optional[str]:
        return self.sp.id_to_piece(token_id) if 0 <= token_id < self.vocab_size else None

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def special_ids(self) -> set[int]:
        return set(self._special)

    def save(self, out_dir: str) -> dict:
        shutil.copyfile(self.path, os.path.join(out_dir, "tokenizer.model"))
        return {"tokenizer_class": "LlamaTokenizer", "legacy": True}


def from_sentencepiece(path: str, chat_template: Optional[str] = None) -> Tokenizer:
    """Tokenizer over a SentencePiece `.model` file (BOS/EOS/pad from the model's own ids)."""
    backend = SentencePieceBackend.from_file(path)
    sp = backend.sp
    opt = lambda i: i if i >= 0 else None
    eos = opt(sp.eos_id())
    return Tokenizer(backend=backend, bos_id=opt(sp.bos_id()), eos_ids=() if eos is None else (eos,),
                     pad_id=opt(sp.pad_id()), chat_template=chat_template, add_bos=True)
