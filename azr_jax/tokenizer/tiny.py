"""A deterministic byte-level tokenizer built in code (no files): tests and tiny CPU configs.

Ids: 0 `<|endoftext|>`, 1 `<|im_start|>` (BOS), 2 `<|im_end|>` (EOS, pad), then byte b at
3 + b. 259 tokens: fits the `tiny` preset (vocab 512, bos 1, eos 2) and mirrors SmolLM2's
special-token layout. Chat template: ChatML.
"""

from __future__ import annotations

import functools

from azr_jax.tokenizer.base import Tokenizer
from azr_jax.tokenizer.chat import CHATML_TEMPLATE
from azr_jax.tokenizer.files import TokenizersBackend

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the ByteLevel alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


@functools.lru_cache(maxsize=1)
def _backend():
    import tokenizers
    from tokenizers import AddedToken, decoders, models, pre_tokenizers

    vocab = {s: i for i, s in enumerate(SPECIALS)}
    vocab.update({c: len(SPECIALS) + b for b, c in bytes_to_unicode().items()})
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return TokenizersBackend(tok)


def tiny_tokenizer() -> Tokenizer:
    """The byte-level test tokenizer (259 ids; bos 1, eos 2, pad 2; ChatML template)."""
    return Tokenizer(backend=_backend(), bos_id=1, eos_ids=(2,), pad_id=2,
                     chat_template=CHATML_TEMPLATE, add_bos=False, model_max_length=512)
