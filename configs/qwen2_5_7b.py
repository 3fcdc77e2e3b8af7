"""AZR on Qwen2.5-7B (base), the paper's recipe, sized for a v5p-128 slice.

Memory per device: `python -m azr_jax.sharding.memory configs/qwen2_5_7b.py --rollout-rows 512`.

Why it fits (v5p-128 = 64 chips x 95 GiB HBM; mesh data=1 x fsdp=16 x tensor=4; Qwen2.5-7B:
7.62e9 params, L=28 layers, d=3584, 28 query heads / 4 KV heads of 128, vocab 152064):

  static  params f32 7.62e9*4 B / 64 chips                       =  0.44 GiB
          AdamW mu+nu f32 (2x params)                            =  0.89 GiB
  update  gradients f32 (1x params)                              =  0.44 GiB
          batch 6 groups x 64 = 384 seqs / (16 data-parallel x 12 micro-batches)
          = 2 seqs per chip of t = 6144 prompt + 8096 response = 14240 tokens
          remat=full: saved layer inputs 28 x 2 x 14240 x 3584 x 2 B  =  5.3 GiB
          one layer recomputed: attention scores f32 + probs bf16 + score grads f32
          2 seqs x 7 heads (28/tensor 4) x 14240^2 x 10 B              = 26.4 GiB
          (+ q/k/v/MLP activations, gathered layer weights ~3 GiB; logit chunks 0.3 GiB)
          training peak                                                ~ 37 GiB
  rollout sampler calls of at most 64 tasks x n=8 = 512 seqs / 16 = 32 seqs per chip
          KV cache 28 x 32 x 14240 x (4/4 KV heads) x 128 x 2 (k,v) x 2 B   =  6.1 GiB
          prefill of a 6144-token prompt: 32 x 7 x 6144^2 x (4+2) B    = 47.2 GiB
          (+ static, bf16 weight copy 0.2 GiB) rollout peak            ~ 55 GiB
  peak = max(37, 55) = 55 GiB of 95 GiB (58%): fits with headroom for XLA temporaries.

Sampler calls must be chunked to <= 512 rows: today the trainer samples all learnability
rollouts of a step in ONE call (3 x 64 x 8 = 1536 rows, padded to 2048), which needs ~4x the
rollout memory (~217 GiB per chip: the estimator without --rollout-rows says so).
The prefill's attention scores (no flash attention) dominate: worst case is a full
6144-token prompt; typical AZR prompts are 1-3k tokens. The smaller v5p-64 (32 chips) does
not fit this worst case (~104 GiB); there, cap the prompt length or sample in smaller calls.
"""

from configs.paper import paper_config

TPU_SLICE = "v5p-128"


def get_config():
    return paper_config("qwen2.5-7b", fsdp=16, tensor=4, micro_batches=12)
