"""Shared body of the paper recipes (Absolute Zero, Zhao et al. 2025, Table/Appendix settings).

Each recipe module names its model preset and the TPU slice it is sized for (`TPU_SLICE`,
read by `python -m azr_jax.pipeline.recipe_memory configs/<recipe>.py` and launch/settings.sh),
and calls `paper_config(...)`. The paper's hyperparameters are set explicitly here even
where configs/base.py already has them, so a recipe reads as the paper's table.
"""

from azr_jax.pipeline.recipe_memory import paged_pool_pages
from configs import base

# The rollouts' KV cache is paged (sampling.kv_layout="paged"). Its pool is per data shard
# (the engine splits pages over data x fsdp: 16 shards on every recipe's TPU_SLICE), sized for
# the shard's 512 / 16 = 32 decode slots at 2,048 live tokens each on average (a solver prompt
# of ~500 tokens and the time-averaged live part of heavy-tailed responses of median ~1,000):
# 4,129 pages. Rows that run longer wait for pages (or are preempted and redrawn: same tokens).
# On another slice the pool per shard stays, so its slots share more or fewer pages.
DATA_SHARDS = 16
LIVE_TOKENS_PER_ROW = 2048
PAGE_SIZE = 16  # tokens per page: the Pallas TPU/GPU paged-attention kernels need a multiple of 16


def paper_config(preset: str, *, tensor: int, micro_batches: int, data: int = 1):
    """fsdp is -1: all chips left after data x tensor (16 on the recipe's TPU_SLICE), so the
    same recipe fits a smaller or larger slice without a mesh override."""
    c = base.get_config()
    c.model.preset = preset
    c.model.path = ""  # set to the converted HF checkpoint directory (docs/tpu_and_pods.md)
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"  # f32 master weights and AdamW moments
    c.model.remat = "full"  # keep only each layer's input: long sequences fit
    c.model.attention_block = 1024  # attention scores of 1024 queries at a time, not 14k
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = data, -1, tensor

    c.selfplay.batch_per_group = 64  # per task type and role: 6 x 64 = 384 sequences/step
    c.selfplay.num_references = 6  # K
    c.selfplay.num_rollouts = 8  # n, learnability estimate
    c.selfplay.num_inputs = 10  # induction inputs: exactly 10 (the last 10 fences), 5 shown
    c.selfplay.induction_visible_fraction = 0.5  # official: len // 2 shown, the rest hidden
    # The official rules (docs/FIDELITY.md, one row each, with the official file and value):
    c.selfplay.seed_batch_factor = 4  # seeding phase: 64 x 4 = 256 tasks per buffer first
    c.selfplay.buffer_capacity = 16384  # max_programs; a full buffer keeps its oldest
    c.selfplay.reward_rule = "official"  # invalid -1, learnability 0 -> -0.5, else 1 - s
    c.selfplay.banned = "official"  # 12 modules, import statements only, plus "input("
    c.selfplay.timeout_s = 10.0  # executor timeout
    c.selfplay.prompt_format = "r1"  # base models: plain text, the assistant opens <think>
    c.sampling.temperature = 1.0
    c.sampling.top_p = 1.0
    c.sampling.top_k = 0
    c.sampling.max_prompt_len = 6144
    c.sampling.max_new_tokens = 8096
    c.sampling.prompt_bucket = "mult64"  # pow2 would pad a 6144 prompt to 8192
    c.sampling.max_rows_per_call = 512  # 512 decode slots: their KV cache fits (configs/qwen2_5_7b.py)
    c.sampling.kv_layout = "paged"  # a row holds the pages its tokens fill, not 14k slots
    c.sampling.page_size = PAGE_SIZE
    c.sampling.kv_pages = paged_pool_pages(c.sampling.max_rows_per_call // DATA_SHARDS,
                                           LIVE_TOKENS_PER_ROW, PAGE_SIZE)  # per shard
    c.rl.estimator = "trr++"
    c.rl.kl_coef = 0.0  # no KL
    c.rl.entropy_coef = 0.001  # official paper branch (veRL actor.entropy_coeff)
    c.rl.clip_eps = c.rl.clip_eps_high = 0.2  # PPO clip on both sides
    c.rl.adv_eps = 1e-8  # TRR++ token whitening: sqrt(var + 1e-8)
    c.rl.aggregation = "micro_token_mean"  # veRL dp_actor: token mean per micro-batch / count
    c.rl.micro_rows = 16  # official ppo_micro_batch_size_per_gpu (scripts/selfplay/*.sh)
    c.rl.old_logprobs = "recompute"  # official: the trainer's model, before the update
    c.optim.lr = 1e-6  # AdamW
    c.optim.weight_decay = 0.01  # veRL's AdamW default (fsdp_workers.py), every parameter
    c.optim.decay_mask = "all"
    c.optim.mini_batch_size = 128  # official ppo_mini_batch_size: 384 rows = 3 AdamW steps
    c.optim.micro_batches = micro_batches  # per mini-batch: the activation memory knob
    c.executor.workers = 0  # every host's cores less a reserve (TPU VM hosts: 100-240 vCPUs)
    c.trainer.checkpoint_every = 10  # preemptible slices: lose at most 10 steps
    c.trainer.keep = 3
    return c
