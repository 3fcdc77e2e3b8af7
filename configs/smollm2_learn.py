"""Self-play that learns on the bundled SmolLM2-135M-Instruct on 2 CPU cores (`make learn`).

configs/smollm2_demo.py plus the levers that a 135M model needs to get a learning signal
under the official reward rules, each chosen by measurement (benchmarks/learn_signal.py and
short runs; BENCHMARKS.md, "Learning"). The reward rules stay the official ones.
- `selfplay.close_answer` (azr_jax/pipeline/answer_stop.py): SmolLM2-135M writes the
  fenced blocks an answer needs, then stops (EOS) or rambles on without `</answer>`, so
  every response is a format error (-1) and every advantage is 0. With this lever each
  response is cut after the fence that completes its answer (like a stop sequence; the
  tokens after it are not trained on) and parsed as if `</answer>` followed. The official
  rule stays the default.
- seeds: sixteen one-line programs of our own (configs/seeds/learn.jsonl), so some
  solver groups hold correct answers (a group of only wrong answers has zero
  advantages). The demo's twelve programs were never solved. Never benchmark programs.
  The same programs seed the induction buffer (configs/seeds/learn_induction.jsonl, four
  inputs each, the role of the official *_code_f_seed_io.jsonl): with the identity task
  alone, the induction solver learnt `return x` and nothing else.
- solver answers as a Python comment on the call (`prefix.deduction_solve`:
  ```python / print(f(<input>))  # Output: ...; abduction: # Output: <output> / # Input: ...),
  read by the official `# Output:` / `# Input:` fallbacks. Measured on the base model:
  deduction greedy 0 -> 4/16, pass@1 0.03 -> 0.14; with ```output the model closes an
  empty block.
- scaffold (azr_jax/pipeline/scaffold.py): the 135M proposer writes its program block and
  then never the ```input block. The rollout writes the block's opening for it after each
  closed block (not trained on) and sampling resumes. Measured on the base model
  (benchmarks/learn_signal.py --skip solve --proposals 16): valid proposals 0 -> 0.50
  (deduction), 0 -> 0.50 (abduction), 0 -> 0 (induction: empty input blocks).
- prompts: the compact pack with proposer prompts that spell out the answer's block order,
  and an induction solver prompt that shows the pairs before the message
  (configs/prompts/learn.json; greedy 1/16 -> 3/16 induction probe tasks on the base model).
- sizes for speed on 2 cores: one reference per proposal, prompts <= 192 tokens and
  responses <= 64 (prompt + response <= 256: one update shape, half the 512 of the demo);
  8 samples per (type x role) group; a learning rate for a 135M model (the paper's 1e-6 is
  for 7B models); two AdamW steps per training step (mini-batches of 24 sequences);
- two fixed probes, never in the buffers: `probe/heldout/*` (configs/probe/heldout.jsonl:
  sixteen programs unlike the seeds and unlike each other) and `probe/seen/*`
  (configs/probe/learn.jsonl: the seed programs with four new inputs each, i.e. recall):
  the solver's greedy accuracy before the first update (step 0) and every `probe.every`
  steps, plus pass@1..8 (8 samples per task at temperature 1) at step 0 and at the end.
Measured before the held-out probe existed (BENCHMARKS.md, "Learning"; attempt 7, 12 steps,
33 min on 2 CPU cores): the seen probe's greedy accuracy goes 0.146 (step 0) -> 0.250 (step 12), +10.4 points, all from
induction (3 -> 8 of 16): the induction solver writes the seed programs back from new pairs.
Deduction ends where it started, abduction stays at 0, and the valid rate (0.375 -> 0.708)
stays far from 3x its first-5 mean (0.600): the scaffolded proposers start high, by copying.
"""

import os

from configs import smollm2_demo

HERE = os.path.dirname(os.path.abspath(__file__))
LEARN_SEEDS = os.path.join(HERE, "seeds", "learn.jsonl")
# the same programs as induction tasks (the official *_code_f_seed_io.jsonl role)
LEARN_INDUCTION_SEEDS = os.path.join(HERE, "seeds", "learn_induction.jsonl")
LEARN_PROMPTS = os.path.join(HERE, "prompts", "learn.json")


def get_config():
    c = smollm2_demo.get_config()  # with its levers: close_answer, scaffold, solver prefixes
    c.selfplay.seed_file = f"{LEARN_SEEDS},{LEARN_INDUCTION_SEEDS}"
    c.selfplay.prompt_file = LEARN_PROMPTS
    c.selfplay.num_references = 1
    c.selfplay.batch_per_group = 8
    c.sampling.max_prompt_len = 192
    c.sampling.max_new_tokens = 64  # prompt + response <= 256: one update shape
    # at most 128 rows decode at once (continuous batching; the tokens do not depend on it):
    # pass@8 on the two probes is 768 rows, whose one static batch (1024 padded) needs ~12 GB of KV
    c.sampling.max_rows_per_call = 128
    c.optim.lr = 2e-5
    c.optim.mini_batch_size = 24  # 48 trained sequences per step: two AdamW steps
    # as measured (BENCHMARKS.md): one token mean per mini-batch; the official's micro-batches
    # of 16 rows would cut its 8-row groups unevenly (16 + 8)
    c.rl.aggregation = "token_mean"
    c.optim.micro_batches = 4
    c.probe.every = 3  # two probes of 48 tasks each: steps 0, 3, 6, 9, 12
    c.probe.file = os.path.join(HERE, "probe", "learn.jsonl")  # seen: recall of the seeds
    c.probe.heldout_file = os.path.join(HERE, "probe", "heldout.jsonl")  # programs unlike them
    c.probe.passk_samples = 8  # pass@1..8 at step 0 and at the end
    c.trainer.steps = 12
    c.trainer.checkpoint_every = 2
    c.trainer.keep = 2
    return c
