"""Tokenizers: one `Tokenizer` interface over HF tokenizer.json, SentencePiece and GGUF
metadata, with chat templates. See `Tokenizer` for the methods."""

from azr_jax.tokenizer.base import Tokenizer
from azr_jax.tokenizer.chat import CHATML_TEMPLATE
from azr_jax.tokenizer.files import from_hf_dir
from azr_jax.tokenizer.gguf_vocab import from_gguf
from azr_jax.tokenizer.sp import from_sentencepiece
from azr_jax.tokenizer.tiny import tiny_tokenizer

__all__ = ["Tokenizer", "CHATML_TEMPLATE", "from_hf_dir", "from_gguf", "from_sentencepiece",
           "tiny_tokenizer"]
