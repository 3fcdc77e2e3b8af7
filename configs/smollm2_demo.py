"""The bundled SmolLM2-135M-Instruct on CPU: a short real self-play run (what `make demo` runs).

Sized to finish in minutes on a 2-core machine: 2 samples per (task type x role) group,
responses up to 64 tokens, 3 steps, each answer started in the
expected format (`prefix`). Temperature 0.8 (the paper uses 1.0) so a 135M model
writes well-formed answers more often. Everything else follows configs/base.py.
"""

from configs import base


def get_config():
    c = base.get_config()
    c.model.preset = "smollm2-135m"
    c.model.dtype = "float32"
    c.model.remat = "full"  # 30 layers of attention scores would not fit in RAM otherwise
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.sampling.temperature = 0.8
    c.sampling.max_prompt_len = 448
    c.sampling.max_new_tokens = 64  # prompt + response <= 512: one update shape
    c.selfplay.batch_per_group = 2
    c.selfplay.num_references = 2
    c.selfplay.num_rollouts = 2
    c.selfplay.num_inputs = 4
    # Start each answer in the expected format: a 135M model rarely finds it unaided.
    for t in ("deduction", "abduction"):
        c.prefix[f"{t}_propose"] = "<answer>\n```python\ndef f("
        c.prefix[f"{t}_solve"] = "<answer>"
    c.prefix.induction_propose = "<answer>\n```input\n"
    c.prefix.induction_solve = "<answer>\n```python\ndef f("
    c.optim.lr = 1e-6
    c.optim.micro_batches = 2
    c.executor.workers = 1
    c.trainer.steps = 3
    c.trainer.checkpoint_every = 3
    c.trainer.keep = 1
    return c
