"""Self-play that learns on the bundled SmolLM2-135M-Instruct on 2 CPU cores (`make learn`).

configs/smollm2_demo.py plus the levers that a 135M model needs to get a learning signal
under the official reward rules, each chosen by short measured runs (BENCHMARKS.md,
"Learning"):
- `selfplay.close_answer` (azr_jax/pipeline/answer_stop.py): SmolLM2-135M writes the
  fenced blocks an answer needs, then stops (EOS) or rambles on without `</answer>`, so
  every response is a format error (-1) and every advantage is 0. With this lever each
  response is cut after the fence that completes its answer (like a stop sequence; the
  tokens after it are not trained on) and parsed as if `</answer>` followed. The official
  rule stays the default.
- a learning rate for a 135M model (the paper's 1e-6 is for 7B models), 4 samples per
  group, one AdamW step per training step;
- a fixed probe (configs/probe/probe.jsonl, our own programs, never in the buffers):
  the solver's greedy accuracy every `probe.every` steps, logged as `probe/*`.
Measured (BENCHMARKS.md, "Learning"): the goal is NOT met with these levers. No sampled
answer was ever correct and no proposal valid, so after the first update (which teaches the
solver to close its answer block at once) every advantage is 0 and the probe stays at 0.
"""

import os

from configs import smollm2_demo

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config():
    c = smollm2_demo.get_config()
    c.selfplay.close_answer = True
    c.selfplay.batch_per_group = 4
    c.optim.lr = 5e-5
    c.optim.mini_batch_size = 0  # one AdamW step per training step
    c.optim.micro_batches = 4
    c.probe.every = 3
    c.probe.file = os.path.join(HERE, "probe", "probe.jsonl")
    c.trainer.steps = 10  # about 45 min on 2 shared CPU cores (BENCHMARKS.md)
    c.trainer.checkpoint_every = 5
    c.trainer.keep = 5
    return c
