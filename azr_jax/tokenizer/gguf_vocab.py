"""Build a `tokenizers` BPE tokenizer from GGUF metadata (tokens, merges, types, specials).

The GGUF pre-tokenizer name selects how text is split before BPE. `smollm` splits every
digit on its own before GPT-2 byte-level splitting, exactly as the original SmolLM2
tokenizer.json does (transformers' GGUF loader ignores this and uses plain GPT-2 splitting).
"""

from __future__ import annotations

from typing import Callable

from azr_jax.errors import UserError
from azr_jax.gguf_reader import open_gguf
from azr_jax.tokenizer.base import Tokenizer
from azr_jax.tokenizer.files import TokenizersBackend

_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# GGUF token types (llama.cpp): 3 = control (special), 4 = user-defined (added, not special).
_CONTROL, _USER_DEFINED = 3, 4


def _byte_level(use_regex=True):
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)


def _regex_then_bytes(pattern: str):
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                    _byte_level(use_regex=False)])


def _smollm():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _byte_level()])


# tokenizer.ggml.pre -> pre-tokenizer factory
PRE_TOKENIZERS: dict[str, Callable] = {
    "default": _byte_level,
    "gpt2": _byte_level,
    "smollm": _smollm,
    "llama-bpe": lambda: _regex_then_bytes(_LLAMA3_SPLIT),
    "llama3": lambda: _regex_then_bytes(_LLAMA3_SPLIT),
    "qwen2": lambda: _regex_then_bytes(_QWEN2_SPLIT),
}


def _field(fields, key, default=None):
    field = fields.get(key)
    return default if field is None else field.contents()


def tokenizer_from_gguf_fields(fields) -> Tokenizer:
    """Tokenizer from a `gguf.GGUFReader(...).fields` mapping."""
    import tokenizers
    from tokenizers import AddedToken, decoders, models, normalizers

    kind = _field(fields, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise UserError(f"unsupported GGUF tokenizer model {kind!r}; supported: 'gpt2' (byte-level BPE)")
    pre = _field(fields, "tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise UserError(f"unsupported GGUF pre-tokenizer {pre!r}; supported: {', '.join(PRE_TOKENIZERS)}")
    tokens = list(_field(fields, "tokenizer.ggml.tokens"))
    merges = [tuple(m.split(" ", 1)) for m in _field(fields, "tokenizer.ggml.merges", [])]
    types = list(_field(fields, "tokenizer.ggml.token_type", [1] * len(tokens)))

    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False,
                     byte_fallback=False)
    tok = tokenizers.Tokenizer(bpe)
    if pre == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = PRE_TOKENIZERS[pre]()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == _CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == _USER_DEFINED])

    def opt_id(key):
        value = _field(fields, key)
        return None if value is None else int(value)

    eos = opt_id("tokenizer.ggml.eos_token_id")
    eot = opt_id("tokenizer.ggml.eot_token_id")
    eos_ids = tuple(dict.fromkeys(i for i in (eos, eot) if i is not None))
    return Tokenizer(backend=TokenizersBackend(tok), bos_id=opt_id("tokenizer.ggml.bos_token_id"),
                     eos_ids=eos_ids, pad_id=opt_id("tokenizer.ggml.padding_token_id"),
                     chat_template=_field(fields, "tokenizer.chat_template"),
                     add_bos=bool(_field(fields, "tokenizer.ggml.add_bos_token", False)))


def from_gguf(path: str) -> Tokenizer:
    """Tokenizer from the metadata of a GGUF file."""
    return tokenizer_from_gguf_fields(open_gguf(path).fields)
