"""A random tiny model on CPU: every code path of the trainer in seconds (used by the tests).

Official rules throughout (configs/base.py); only sizes shrink, and the prompts come from
a terse pack (configs/prompts/tiny.json) so that prompt + response fit the tiny model's 512
positions.
"""

import os

from configs import base

TINY_PROMPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompts", "tiny.json")


def get_config():
    c = base.get_config()
    c.model.preset = "tiny"
    c.model.dtype = "float32"
    c.model.remat = "none"
    # fits any device count (all on fsdp); the tests shard 2 x 2 x 2 with --config.mesh.*
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.sampling.max_prompt_len = 384
    c.sampling.max_new_tokens = 24
    c.selfplay.batch_per_group = 4
    c.selfplay.num_references = 2
    c.selfplay.num_rollouts = 2
    c.selfplay.num_inputs = 4
    c.optim.lr = 1e-3
    c.executor.workers = 1
    c.selfplay.timeout_s = 2.0
    c.selfplay.prompt_file = TINY_PROMPTS
    c.trainer.steps = 3
    c.trainer.checkpoint_every = 1
    c.trainer.keep = 2
    c.trainer.progress = False
    return c
