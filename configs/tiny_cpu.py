"""A random tiny model on CPU: every code path of the trainer in seconds (used by the tests)."""

from configs import base


def get_config():
    c = base.get_config()
    c.model.preset = "tiny"
    c.model.dtype = "float32"
    c.model.remat = "none"
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, 2, 2
    c.sampling.max_prompt_len = 128
    c.sampling.max_new_tokens = 24
    c.selfplay.batch_per_group = 4
    c.selfplay.num_references = 2
    c.selfplay.num_rollouts = 2
    c.selfplay.num_inputs = 4
    c.optim.lr = 1e-3
    c.executor.workers = 1
    c.selfplay.timeout_s = 2.0
    c.trainer.steps = 3
    c.trainer.checkpoint_every = 1
    c.trainer.keep = 2
    c.trainer.progress = False
    return c
