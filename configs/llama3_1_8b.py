"""AZR on Llama-3.1-8B (base), the paper's recipe, sized for a v5p-128 slice.

Memory per device: `python -m azr_jax.pipeline.recipe_memory configs/llama3_1_8b.py --rollout-rows 512`
(sized for sampler calls of <= 512 rows; see configs/qwen2_5_7b.py).
"""

from configs.paper import paper_config

TPU_SLICE = "v5p-128"


def get_config():
    return paper_config("llama3.1-8b", tensor=4, micro_batches=4)
