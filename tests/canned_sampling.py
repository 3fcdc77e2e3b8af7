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


def scripted_sample(respond):
    """A drop-in for `sampling.sample` (as `rollout.sample`) that writes every row:
    `respond(prompt_text, num_samples, row)` gives its text (rows prompt-major, `row` counted
    from 0 in each call); the row holds its tokens, then the stop token, log-prob -1 each
    (`response_length` is that length)."""
    from azr_jax.sampling.sampler import SampleOutput

    tok = tiny_tokenizer()

    def sample(params, cfg, prompts, key, sampling, mesh=None, budgets=None):
        n = sampling.num_samples
        rows = len(prompts) * n
        tokens = np.full((rows, sampling.max_new_tokens), sampling.pad_token_id, np.int32)
        logprobs = np.zeros((rows, sampling.max_new_tokens), np.float32)
        lengths = np.zeros((rows,), np.int32)
        for r in range(rows):
            text = respond(tok.decode(prompts[r // n], skip_special_tokens=False), n, r)
            ids = tok.encode(text) + [sampling.stop_token_ids[0]]
            assert len(ids) <= sampling.max_new_tokens
            tokens[r, : len(ids)], logprobs[r, : len(ids)], lengths[r] = ids, -1.0, len(ids)
        return SampleOutput(tokens, logprobs, lengths, np.repeat(np.arange(len(prompts)), n))

    return sample


def response_length(text: str) -> int:
    """Tokens of a `scripted_sample` row answering `text` (the stop token included)."""
    return len(tiny_tokenizer().encode(text)) + 1


def train_capturing(cfg, workdir: str):
    """`train` with the real rollout; returns (its result, the rollout of each step)."""
    from azr_jax.pipeline import rollout as rollout_mod
    from azr_jax.pipeline.trainer import train

    captured = []

    def rollout_fn(ctx, step, params):
        captured.append(rollout_mod.run_rollout(ctx, step, params))
        return captured[-1]

    return train(cfg, workdir, rollout_fn=rollout_fn), captured
