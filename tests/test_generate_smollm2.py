"""`azr-jax generate` on the bundled SmolLM2-135M GGUF gives transformers' greedy tokens.

The prompt ids come from OUR tokenizer on both sides, so only the models are compared.
The converted weights are cached on disk by `load_model` (sha256-keyed) and the transformers
model is loaded once per session.
"""

import json
import os

import pytest

from azr_jax.cli import main

PROMPT = "Write a Python function that reverses a string."
NEW = 48


@pytest.fixture(scope="session")
def hf_smollm2():
    import torch
    from transformers import AutoModelForCausalLM

    from azr_jax.checkpoints import bundled_smollm2_path

    directory, name = os.path.split(bundled_smollm2_path())
    return AutoModelForCausalLM.from_pretrained(directory, gguf_file=name,
                                                dtype=torch.float32).eval()


def test_cli_greedy_equals_transformers_on_bundled_gguf(hf_smollm2, capsys):
    import torch

    from azr_jax.checkpoints import bundled_smollm2_path
    from azr_jax.sampling.text import encode_prompt
    from azr_jax.tokenizer import from_gguf

    rc = main(["generate", "--model", "smollm2-135m", "--chat", "--prompt", PROMPT,
               "--max-new-tokens", str(NEW), "--temperature", "0", "--json"])
    assert rc == 0
    ours = json.loads(capsys.readouterr().out)

    tok = from_gguf(bundled_smollm2_path())
    prompt = encode_prompt(tok, PROMPT, chat=True)
    ids = torch.as_tensor([prompt])
    with torch.no_grad():
        out = hf_smollm2.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=NEW, eos_token_id=list(tok.eos_ids),
                                  pad_token_id=tok.pad_id)
    want = out[0, len(prompt):].tolist()
    assert ours["tokens"] == want
    assert "def " in ours["text"] and ours["text"] == tok.decode(want, skip_special_tokens=True)
