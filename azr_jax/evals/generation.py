"""Text in, text out over the jitted sampler, in fixed-size batches with a progress bar."""

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

    Prompts go to the sampler ``batch_size`` at a time (fixed batch shapes: few compiles);
    batch b uses PRNG seed ``(seed, b)`` so a run reproduces.
    """
    import jax
    from tqdm import tqdm

    from azr_jax.sampling import encode_prompt, prepare_params, sample

    stops = tuple(getattr(tokenizer, "eos_ids", ()) or ())
    sampling = sampling.replace(stop_token_ids=tuple(sampling.stop_token_ids) + stops)
    token_prompts = [list(p) if isinstance(p, tuple) else encode_prompt(tokenizer, p, chat)
                     for p in prompts]
    texts: list[list[str]] = []
    base_key = jax.random.PRNGKey(seed)
    params = prepare_params(params, model_cfg)  # one decode layout for every batch
    with tqdm(total=len(prompts), desc=desc, disable=not progress, unit="prompt") as bar:
        for b, start in enumerate(range(0, len(token_prompts), batch_size)):
            batch = token_prompts[start:start + batch_size]
            out = sample(params, model_cfg, batch, jax.random.fold_in(base_key, b), sampling)
            rows = [tokenizer.decode(out.row_tokens(r), skip_special_tokens=True)
                    for r in range(len(out.lengths))]
            n = sampling.num_samples
            texts.extend(rows[i * n:(i + 1) * n] for i in range(len(batch)))
            bar.update(len(batch))
    return texts
