"""The bundled SmolLM2-135M-Instruct GGUF: tokenizer as the original (digits split), ChatML
template, and logits equal to transformers' own GGUF load (which dequantizes to f32).

Measured: max |logit difference| 1.1e-4 on a 40-token chat prompt (|logits| up to 38), every
argmax equal; the test allows 1e-3.
"""

import os

import numpy as np
import pytest

from azr_jax.checkpoints import bundled_smollm2_path, load_model
from azr_jax.models import forward

LOGIT_TOL = 1e-3


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m", progress=False)


def test_tokenizer_matches_original_smollm2(smollm2):
    # from_gguf's tokenizer, as saved in (and reloaded from) the converted-GGUF cache
    tok = smollm2.tokenizer
    assert (tok.vocab_size, tok.bos_id, tok.eos_ids, tok.pad_id) == (49152, 1, (2,), 2)
    # Digit-free text: the same ids as transformers' GGUF tokenizer (checked once, pinned here).
    assert tok.encode("Hello world, how are you?") == [19556, 905, 28, 638, 359, 346, 47]
    # Digits: each digit its own token, and a run of spaces before a digit stays one "ĠĠ"
    # token (256) as in the original tokenizer.json (Digits then ByteLevel); transformers'
    # GGUF loader gives [104, 446, 216, 216, 33, 34] here.
    assert tok.encode("x =  12") == [104, 446, 256, 33, 34]
    assert tok.encode("  42") == [256, 36, 34]
    assert tok.encode("def f(x):\n    return x * 10000\n") == [
        1604, 275, 24, 104, 727, 472, 1003, 1792, 1672, 216, 33, 32, 32, 32, 32, 198]
    assert [tok.decode([i]) for i in range(32, 42)] == [str(d) for d in range(10)]
    text = "def f(x):\n    return x[::-1]  # ñ 😀 3.14"
    assert tok.decode(tok.encode(text)) == text
    assert tok.special_tokens["<|im_end|>"] == 2 and tok.encode("<|im_start|>") == [1]


def test_chat_template_is_chatml(smollm2):
    tok = smollm2.tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert prompt == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                      "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    own_system = tok.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                                         add_generation_prompt=False)
    assert own_system == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"


def test_logits_match_transformers_gguf_load(smollm2):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = smollm2.config
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size) == (30, 576, 9, 3, 49152)
    assert cfg.tie_embeddings and "lm_head" not in smollm2.params and cfg.rms_norm_eps == 1e-5
    tok = smollm2.tokenizer
    ids = np.array([tok.encode(tok.apply_chat_template(
        [{"role": "user", "content": "Write a Python function that reverses a string."}]))])
    ours = np.asarray(forward(smollm2.params, cfg, ids))
    assert np.isfinite(ours).all()
    directory, name = os.path.split(bundled_smollm2_path())
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = model(torch.as_tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=LOGIT_TOL, rtol=0)
    assert (ours.argmax(-1) == theirs.argmax(-1)).all()
