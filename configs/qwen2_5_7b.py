"""AZR on Qwen2.5-7B (base), the paper's recipe, sized for a v5p-128 slice.

Memory per device: `python -m azr_jax.pipeline.recipe_memory configs/qwen2_5_7b.py --rollout-rows 512`.

Why it fits (v5p-128 = 64 chips x 95 GiB HBM; mesh data=1 x fsdp=16 x tensor=4; Qwen2.5-7B:
7.62e9 params, L=28 layers, d=3584, 28 query heads / 4 KV heads of 128, vocab 152064;
the XLA attention path, `--config.model.attention_impl=xla`, in blocks of 1024 query tokens,
`model.attention_block`; the recipe's own `auto` runs the splash kernel on TPU, below):

  static  params f32 7.62e9*4 B / 64 chips                       =  0.44 GiB
          AdamW mu+nu f32 (2x params)                            =  0.89 GiB
  update  gradients f32 (1x params)                              =  0.44 GiB
          batch 6 groups x 64 = 384 seqs in 3 AdamW steps of 128 (optim.mini_batch_size);
          128 / (16 data-parallel x 4 micro-batches) = 2 seqs per chip of t = 6144 prompt + 8096 response = 14240 tokens
          remat=full: saved layer inputs 28 x 2 x 14240 x 3584 x 2 B  =  5.3 GiB
          one layer recomputed: attention scores f32 + probs bf16 + score grads f32
          of one block: 2 seqs x 7 heads (28/tensor 4) x 1024 x 14240 x 10 B = 1.9 GiB
          (+ q/k/v/MLP activations, gathered layer weights ~3 GiB; logit chunks 0.3 GiB)
          training peak                                                ~ 12 GiB
  rollout sampler calls of at most 64 tasks x n=8 = 512 seqs / 16 = 32 seqs per chip
          paged KV cache (configs/paper.py): one data shard's pool of 4,129 pages of 16
          tokens (32 slots x 2,048 live tokens), all 4 KV heads (pages split, heads not):
          28 x 4129 x 16 x 4 x 128 x 2 (k,v) x 2 B                        =  3.5 GiB
          prefill of a 6144-token prompt, one block: 32 x 7 x 1024 x 6144 x (4+2) B = 7.9 GiB
          (+ the prompts' cache before it goes into pages 2.6, prompt q/k/v 0.4, static,
          bf16 weight copy 0.2 GiB)                               rollout peak ~ 16 GiB
          (the dense cache, `--config.sampling.kv_layout=dense`, reserves 14240 slots a
          row: 28 x 32 x 14240 x (4/4 KV heads) x 128 x 2 x 2 B = 6.1 GiB, peak ~16 GiB too)
  peak = max(12, 16) = 16 GiB of 95 GiB (17%).

Without attention blocks the [14240 x 14240] scores of every head dominate: one layer's
backward needs 29 GiB and a 6144-token prefill 48 GiB (peak 55 GiB); this slice was sized
for that. With blocks the recipe has room to spare: the estimator puts v5p-64 (32 chips,
`--slice v5p-64`, where fsdp=-1 becomes 8) at ~28 GiB per chip (its 8 shards keep the same
pool each, so their 64 slots share it: rows wait for pages sooner), and one sampler call for
all 3 x 64 x 8 learnability rollouts (`sampling.max_rows_per_call=0`; 2048 rows) at ~49 GiB.

With `model.attention_impl=auto` (the default here; splash on TPU) no [queries x keys] scores
exist in the update step or the prefill, only per-query softmax statistics: the estimator puts
the training peak at ~10 GiB and the rollout peak at ~8 GiB per chip on this slice.
"""

from configs.paper import paper_config

TPU_SLICE = "v5p-128"


def get_config():
    return paper_config("qwen2.5-7b", tensor=4, micro_batches=4)
