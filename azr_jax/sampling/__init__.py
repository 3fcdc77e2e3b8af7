"""azr_jax.sampling: jitted prefill + decode with a KV cache; temperature/top-p/top-k;
token log-probs; fixed shapes with bucketed prompt lengths."""

from azr_jax.sampling.config import BUCKET_POLICIES, SamplingConfig, padded_batch_size
from azr_jax.sampling.sampler import (PreparedParams, SampleOutput, pack_prompts,
                                      prepare_params, sample)
from azr_jax.sampling.text import TextGeneration, encode_prompt, generate_text

__all__ = ["BUCKET_POLICIES", "SamplingConfig", "SampleOutput", "pack_prompts",
           "padded_batch_size", "PreparedParams", "prepare_params", "sample", "TextGeneration",
           "encode_prompt", "generate_text"]
