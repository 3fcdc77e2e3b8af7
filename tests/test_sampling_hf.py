"""Greedy sampling equals transformers' greedy `generate` on tiny random Llama and Qwen2
models (weights converted by azr_jax.checkpoints), one left-padded batch for all prompts."""

import numpy as np
import pytest

from azr_jax.sampling import SamplingConfig, sample
from tests.hf_reference import make_reference

PROMPTS = [[1, 40, 41, 42], [1, 100, 7, 300, 45, 11, 99, 250, 3], [1, 500], [1, 8, 9, 10, 11, 12]]
NEW = 12


def hf_greedy(model, prompt, new, eos):
    import torch

    ids = torch.as_tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=new, eos_token_id=eos, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize("arch,tied", [("llama", False), ("qwen2", True)])
def test_greedy_equals_transformers_generate(arch, tied):
    ref = make_reference(arch, tied=tied, seed=3)
    stop = hf_greedy(ref.model, PROMPTS[0], NEW, eos=None)[3]  # a token that really occurs
    for stops in ((), (stop,)):
        out = sample(ref.params, ref.config, PROMPTS, 0,
                     SamplingConfig(max_new_tokens=NEW, temperature=0.0, stop_token_ids=stops))
        for i, prompt in enumerate(PROMPTS):
            want = hf_greedy(ref.model, prompt, NEW, eos=stops[0] if stops else None)
            if stops and stops[0] in want:  # HF pads after EOS; ours stops there too
                want = want[:want.index(stops[0]) + 1]
            assert out.row_tokens(i) == want, (arch, stops, i)
            assert len(want) == NEW or want[-1] in stops
