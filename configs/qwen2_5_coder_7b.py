"""AZR on Qwen2.5-Coder-7B (base), the paper's recipe, sized for a v5p-128 slice.

Memory per device: `python -m azr_jax.pipeline.recipe_memory configs/qwen2_5_coder_7b.py --rollout-rows 512`
(sized for sampler calls of <= 512 rows; see configs/qwen2_5_7b.py).
"""

from configs.paper import paper_config

TPU_SLICE = "v5p-128"


def get_config():
    return paper_config("qwen2.5-coder-7b", tensor=4, micro_batches=4)
