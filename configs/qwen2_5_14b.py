"""AZR on Qwen2.5-14B (base), the paper's recipe, sized for a v5p-256 slice.

Memory per device: `python -m azr_jax.pipeline.recipe_memory configs/qwen2_5_14b.py --rollout-rows 512`
(sized for sampler calls of <= 512 rows; see configs/qwen2_5_7b.py).
"""

from configs.paper import paper_config

TPU_SLICE = "v5p-256"


def get_config():
    return paper_config("qwen2.5-14b", tensor=8, micro_batches=4)
