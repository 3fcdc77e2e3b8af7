"""Scripted responses on top of the real sampler, for trainer tests: rows whose prompt gets
a text from `respond(prompt_text, row)` are overwritten with that text (its tokens, then the
stop token; log-prob -1 each), the others keep the model's own sample."""

import numpy as np

from azr_jax.tokenizer import tiny_tokenizer


def canned_sample(real_sample, respond):
    """A drop-in for `sampling.sample` (as `rollout.sample`) that scripts some rows."""
    tok = tiny_tokenizer()

    def sample(params, cfg, prompts, key, sampling, mesh=None, budgets=None):
        out = real_sample(params, cfg, prompts, key, sampling, mesh=mesh, budgets=budgets)
        out.tokens, out.logprobs, out.lengths = (np.array(x) for x in
                                                 (out.tokens, out.logprobs, out.lengths))
        for r, p in enumerate(out.prompt_index):
            text = respond(tok.decode(prompts[p], skip_special_tokens=False), r)
            if text is None:
                continue
            ids = tok.encode(text)[: sampling.max_new_tokens - 1] + [sampling.stop_token_ids[0]]
            out.tokens[r] = sampling.pad_token_id
            out.tokens[r, : len(ids)] = ids
            out.logprobs[r] = 0.0
            out.logprobs[r, : len(ids)] = -1.0
            out.lengths[r] = len(ids)
        return out

    return sample
