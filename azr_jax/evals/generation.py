"""Text in, text out over the jitted sampler (fixed decode slots) with a progress bar."""

from __future__ import annotations

from typing import Sequence, Union

# raw text, chat messages [{"role", "content"}, ...], or a tuple of token ids (sent as is)
Prompt = Union[str, list, tuple]


def encode_prompts(tokenizer, prompts: Sequence[Prompt], chat: bool) -> list[tuple[int, ...]]:
    """Token ids of each prompt (tuples pass through; chat: the tokenizer's template)."""
    from azr_jax.sampling import encode_prompt  # imports JAX: not at CLI start-up

    return [p if isinstance(p, tuple) else tuple(encode_prompt(tokenizer, p, chat))
            for p in prompts]


def generate_texts(params, model_cfg, tokenizer, prompts: Sequence[Prompt], *, sampling,
                   chat: bool = True, seed: int = 0, batch_size: int = 16,
                   progress: bool = False, desc: str = "generating") -> list[list[str]]:
    """``sampling.num_samples`` completions per prompt (new text only, specials removed).

    One sampler call with ``batch_size`` x num_samples decode slots (continuous batching:
    a finished row's slot takes the next waiting one; fixed shapes, few compiles); row r
    draws from PRNG seed ``(seed, r)`` so a run reproduces, whatever the batch size.
    """
    import jax
    from tqdm import tqdm

    from azr_jax.sampling import prepare_params, sample

    stops = tuple(getattr(tokenizer, "eos_ids", ()) or ())
    n = sampling.num_samples
    sampling = sampling.replace(stop_token_ids=tuple(sampling.stop_token_ids) + stops,
                                max_rows_per_call=batch_size * n)
    token_prompts = [list(p) for p in encode_prompts(tokenizer, prompts, chat)]
    params = prepare_params(params, model_cfg)  # one decode layout for the whole call
    with tqdm(total=len(prompts) * n, desc=desc, disable=not progress, unit="sample") as bar:
        out = sample(params, model_cfg, token_prompts, jax.random.PRNGKey(seed), sampling,
                     progress=bar.update)
    rows = [tokenizer.decode(out.row_tokens(r), skip_special_tokens=True)
            for r in range(len(out.lengths))]
    return [rows[i * n:(i + 1) * n] for i in range(len(prompts))]
