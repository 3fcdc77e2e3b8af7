"""Text in, text out: render (chat) prompts, sample, decode the new tokens."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Union

from azr_jax.sampling.config import SamplingConfig
from azr_jax.sampling.sampler import sample


# What `generate_text` samples with when given no settings: greedy, the same defaults as
# `azr-jax generate` (tests/test_generate_cli.py holds the two together).
DEFAULT_SAMPLING = SamplingConfig(max_new_tokens=128, temperature=0.0, top_p=1.0, top_k=0)


@dataclasses.dataclass
class TextGeneration:
    prompt_index: int
    tokens: list[int]  # the new tokens, including a final stop token
    text: str  # the new tokens decoded, special tokens removed


def encode_prompt(tokenizer, prompt: Union[str, list], chat: bool) -> list[int]:
    """Token ids of a prompt: text, or chat messages [{"role", "content"}, ...].

    Chat: the tokenizer's template around the messages (a text is one user message; the BOS
    comes from the template). Plain: the text (messages' contents joined by blank lines),
    with the tokenizer's BOS if it adds one."""
    if chat:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return tokenizer.encode(text, add_special_tokens=False)
    text = prompt if isinstance(prompt, str) else "\n\n".join(m["content"] for m in prompt)
    return tokenizer.encode(text, add_special_tokens=True)


def stop_ids(tokenizer, model_cfg) -> tuple[int, ...]:
    """End-of-sequence ids of the tokenizer and of the model config (deduplicated)."""
    ids = tuple(getattr(tokenizer, "eos_ids", ()) or ()) + tuple(model_cfg.eos_token_ids)
    return tuple(dict.fromkeys(int(i) for i in ids))


def generate_text(loaded, prompts: Sequence[str], *, chat: bool = False,
                  sampling: Optional[SamplingConfig] = None, seed: int = 0, mesh=None,
                  **sampling_fields) -> list[TextGeneration]:
    """Sample continuations of text prompts with a `LoadedModel` (config, params, tokenizer).

    `sampling` (or keyword fields such as max_new_tokens=, temperature=) sets the sampler,
    on top of DEFAULT_SAMPLING (greedy, 128 new tokens, as `azr-jax generate`);
    generation stops at the tokenizer's/model's end-of-sequence ids in addition to any
    `stop_token_ids` given. Returns len(prompts) * num_samples rows, prompt-major.
    """
    sampling = (sampling or DEFAULT_SAMPLING).replace(**sampling_fields)
    tokenizer = loaded.tokenizer
    stops = tuple(dict.fromkeys(sampling.stop_token_ids + stop_ids(tokenizer, loaded.config)))
    sampling = sampling.replace(stop_token_ids=stops)
    token_prompts = [encode_prompt(tokenizer, p, chat) for p in prompts]
    out = sample(loaded.params, loaded.config, token_prompts, seed, sampling, mesh=mesh)
    rows = []
    for r in range(len(out.lengths)):
        tokens = out.row_tokens(r)
        rows.append(TextGeneration(prompt_index=int(out.prompt_index[r]), tokens=tokens,
                                   text=tokenizer.decode(tokens, skip_special_tokens=True)))
    return rows
