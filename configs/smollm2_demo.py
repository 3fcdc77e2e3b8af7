"""The bundled SmolLM2-135M-Instruct on CPU: a short real self-play run (what `make demo` runs).

Small batches and short responses so a few steps fit in minutes on a 2-core machine.
"""

from configs import base


def get_config():
    c = base.get_config()
    c.model.preset = "smollm2-135m"
    c.model.dtype = "float32"
    c.model.remat = "none"
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.sampling.max_prompt_len = 1024
    c.sampling.max_new_tokens = 160
    c.selfplay.batch_per_group = 4
    c.selfplay.num_references = 2
    c.selfplay.num_rollouts = 2
    c.selfplay.num_inputs = 4
    c.optim.lr = 1e-6
    c.executor.workers = 1
    c.trainer.steps = 3
    c.trainer.checkpoint_every = 3
    c.trainer.keep = 1
    return c
