"""Tokenizer: tiny byte-level, SentencePiece, HF dirs (save -> transformers reload), chat templates."""

import io
import json
import os

import pytest

from azr_jax.errors import UserError
from azr_jax.tokenizer import (CHATML_TEMPLATE, from_gguf, from_hf_dir, from_sentencepiece,
                               tiny_tokenizer)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 2 and 3."},
            {"role": "assistant", "content": "5"}, {"role": "user", "content": "ñ 😀?"}]

# A Llama 3 style template (BOS + header tokens + eot), rendered by us and by transformers.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def test_tiny_tokenizer_round_trip_and_specials():
    tok = tiny_tokenizer()
    assert tok.vocab_size == 259 and tok.bos_id == 1 and tok.eos_ids == (2,) and tok.pad_id == 2
    text = "def f(x):\n    return x * 2  # ñ 😀"
    ids = tok.encode(text)
    assert ids == [3 + b for b in text.encode("utf-8")]
    assert tok.decode(ids) == text
    assert tok.encode("<|im_start|>hi<|im_end|>") == [1, 3 + ord("h"), 3 + ord("i"), 2]
    assert tok.decode([1, 3 + ord("h"), 2]) == "h"
    assert tok.decode([1, 3 + ord("h"), 2], skip_special_tokens=False) == "<|im_start|>h<|im_end|>"
    assert tok.special_tokens == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    assert tok.has_chat_template
    rendered = tok.apply_chat_template(MESSAGES[:2])
    assert rendered == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nAdd 2 and 3."
                        "<|im_end|>\n<|im_start|>assistant\n")
    assert not tok.apply_chat_template(MESSAGES[:2], add_generation_prompt=False).endswith("assistant\n")


def test_chat_template_errors():
    tok = tiny_tokenizer()
    with pytest.raises(UserError, match="role"):
        tok.apply_chat_template([{"content": "no role"}])
    tok.chat_template = "{{ raise_exception('only user turns') }}"
    with pytest.raises(UserError, match="only user turns"):
        tok.apply_chat_template(MESSAGES)


@pytest.mark.parametrize("template", [None, LLAMA3_TEMPLATE])
def test_save_loads_in_transformers(tmp_path, template):
    from transformers import AutoTokenizer

    tok = tiny_tokenizer()
    if template:  # a Llama 3 style checkpoint: header tokens and a BOS the template writes
        tok.backend.tok.add_special_tokens(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
        tok.chat_template = template
    tok.save(str(tmp_path))
    theirs = AutoTokenizer.from_pretrained(str(tmp_path))
    ours = from_hf_dir(str(tmp_path))
    for text in ["plain text 123", "<|im_start|>user\nhi<|im_end|>", MESSAGES[3]["content"]]:
        assert ours.encode(text) == theirs.encode(text, add_special_tokens=False) == tok.encode(text)
    want = theirs.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert ours.apply_chat_template(MESSAGES) == want == tok.apply_chat_template(MESSAGES)
    assert (ours.bos_id, ours.eos_ids, ours.pad_id) == (1, (2,), 2)
    assert theirs.eos_token_id == 2 and theirs.bos_token_id == 1
    if template:
        assert want.startswith("<|im_start|><|start_header_id|>system")


def test_hf_dir_without_template_falls_back_to_chatml(tmp_path):
    tok = tiny_tokenizer()
    tok.chat_template = None
    tok.save(str(tmp_path))
    loaded = from_hf_dir(str(tmp_path))
    assert not loaded.has_chat_template
    assert CHATML_TEMPLATE and loaded.apply_chat_template(MESSAGES[1:2]) == \
        "<|im_start|>user\nAdd 2 and 3.<|im_end|>\n<|im_start|>assistant\n"


def test_hf_dir_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        from_hf_dir(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="neither tokenizer.json nor tokenizer.model"):
        from_hf_dir(str(tmp_path))


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    import sentencepiece as spm

    corpus = ["the quick brown fox jumps over the lazy dog", "hello world again and again",
              "pack my box with five dozen liquor jugs", "numbers 0 1 2 3 4 5 6 7 8 9"] * 20
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=out, vocab_size=80,
                                   model_type="bpe", character_coverage=1.0, bos_id=1, eos_id=2,
                                   unk_id=0, pad_id=3, hard_vocab_limit=False,
                                   minloglevel=2)
    path = tmp_path_factory.mktemp("sp") / "tokenizer.model"
    path.write_bytes(out.getvalue())
    return str(path)


def test_sentencepiece(sp_model, tmp_path):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=sp_model)
    tok = from_sentencepiece(sp_model)
    assert (tok.bos_id, tok.eos_ids, tok.pad_id) == (1, (2,), 3)
    assert tok.vocab_size == sp.get_piece_size()
    text = "hello quick fox 42"
    assert tok.encode(text) == sp.encode(text)
    assert tok.encode(text, add_special_tokens=True) == [1] + sp.encode(text)
    assert tok.decode(tok.encode(text)) == text
    ids = tok.encode("hello</s>world")
    assert 2 in ids and tok.decode(ids, skip_special_tokens=False) == "hello</s>world"
    assert tok.decode(ids).split() == ["hello", "world"]  # SP gives "world" a word prefix
    # HF dir with tokenizer.model: same behaviour through from_hf_dir
    tok.save(str(tmp_path))
    again = from_hf_dir(str(tmp_path))
    assert again.encode(text, add_special_tokens=True) == tok.encode(text, add_special_tokens=True)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["eos_token"] == "</s>"
    with pytest.raises(UserError, match="does not exist"):
        from_sentencepiece(str(tmp_path / "missing.model"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a SentencePiece model"):
        from_sentencepiece(str(bad))


def _write_vocab_gguf(path, model="gpt2", pre="smollm"):
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    tokens = ["<|endoftext|>", "a", "b", "ab", "Ġ", "1", "2"]
    w.add_token_list(tokens)
    w.add_token_types([3, 1, 1, 1, 1, 1, 1])
    w.add_token_merges(["a b"])
    w.add_eos_token_id(0)
    w.add_tensor("dummy", np.zeros(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_vocab_and_errors(tmp_path):
    _write_vocab_gguf(tmp_path / "v.gguf")
    tok = from_gguf(str(tmp_path / "v.gguf"))
    assert tok.encode("ab 12<|endoftext|>") == [3, 4, 5, 6, 0]
    assert tok.eos_ids == (0,) and tok.decode([3, 4, 5, 6, 0]) == "ab 12"
    _write_vocab_gguf(tmp_path / "spm.gguf", model="llama")
    with pytest.raises(UserError, match="'llama'"):
        from_gguf(str(tmp_path / "spm.gguf"))
    _write_vocab_gguf(tmp_path / "pre.gguf", pre="mystery")
    with pytest.raises(UserError, match="'mystery'"):
        from_gguf(str(tmp_path / "pre.gguf"))
    with pytest.raises(UserError, match="does not exist"):
        from_gguf(str(tmp_path / "missing.gguf"))
    assert os.path.exists(tmp_path / "v.gguf")
