"""Shared body of the paper recipes (Absolute Zero, Zhao et al. 2025, Table/Appendix settings).

Each recipe module names its model preset and the TPU slice it is sized for (`TPU_SLICE`,
read by `python -m azr_jax.sharding.memory configs/<recipe>.py` and launch/settings.sh),
and calls `paper_config(...)`. The paper's hyperparameters are set explicitly here even
where configs/base.py already has them, so a recipe reads as the paper's table.
"""

from configs import base


def paper_config(preset: str, *, fsdp: int, tensor: int, micro_batches: int, data: int = 1):
    c = base.get_config()
    c.model.preset = preset
    c.model.path = ""  # set to the converted HF checkpoint directory (see README)
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"  # f32 master weights and AdamW moments
    c.model.remat = "full"  # keep only each layer's input: long sequences fit
    c.model.attention_block = 1024  # attention scores of 1024 queries at a time, not 14k
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = data, fsdp, tensor

    c.selfplay.batch_per_group = 64  # per task type and role: 6 x 64 = 384 sequences/step
    c.selfplay.num_references = 6  # K
    c.selfplay.num_rollouts = 8  # n, learnability estimate
    c.selfplay.num_inputs = 10  # induction inputs
    c.sampling.temperature = 1.0
    c.sampling.top_p = 1.0
    c.sampling.top_k = 0
    c.sampling.max_prompt_len = 6144
    c.sampling.max_new_tokens = 8096
    c.sampling.prompt_bucket = "mult64"  # pow2 would pad a 6144 prompt to 8192
    c.sampling.max_rows_per_call = 512  # the KV cache of 512 rows fits (configs/qwen2_5_7b.py)
    c.rl.estimator = "trr++"
    c.rl.kl_coef = 0.0  # no KL
    c.rl.entropy_coef = 0.0
    c.optim.lr = 1e-6  # AdamW
    c.optim.weight_decay = 0.0
    c.optim.micro_batches = micro_batches  # gradient accumulation: activation memory knob
    c.executor.workers = 0  # every host's cores less a reserve (TPU VM hosts: 100-240 vCPUs)
    c.trainer.checkpoint_every = 10  # preemptible slices: lose at most 10 steps
    c.trainer.keep = 3
    return c
