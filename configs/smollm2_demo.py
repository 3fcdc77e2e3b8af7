"""The bundled SmolLM2-135M-Instruct on CPU: a short real self-play run (what `make demo` runs).

Sized to finish in minutes on a 2-core machine: 2 samples per (task type x role) group,
responses up to 96 tokens, 3 steps. The official rewards as in configs/base.py (reward rule
"official", banned list, parsing). Being an instruct model it gets its chat template
(`prompt_format="chat"`) and the compact prompt pack (configs/prompts/compact.json), and
each answer is started in the expected format (`prefix`: an empty think block, then the
answer's opening), which a 135M model rarely finds unaided. Two small-model levers are on
(both off by default): `selfplay.close_answer` (without it every SmolLM2 turn is a format
error, as it never writes `</answer>`) and the proposer `scaffold`. The buffers start from the
identity seed plus twelve small programs (configs/seeds/demo.jsonl), so the references it
imitates are varied. Temperature 0.8 (the paper uses 1.0) so it writes well-formed answers
more often. Everything else follows configs/base.py.
"""

import os

from configs import base

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_FILE = os.path.join(HERE, "seeds", "demo.jsonl")
COMPACT_PROMPTS = os.path.join(HERE, "prompts", "compact.json")


def get_config():
    c = base.get_config()
    c.model.preset = "smollm2-135m"
    c.model.dtype = "float32"
    c.model.remat = "full"  # 30 layers of attention scores would not fit in RAM otherwise
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.sampling.temperature = 0.8
    c.sampling.max_prompt_len = 416
    c.sampling.max_new_tokens = 96  # prompt + response <= 512: one update shape
    c.selfplay.batch_per_group = 2
    c.selfplay.num_references = 2
    c.selfplay.num_rollouts = 2
    c.selfplay.num_inputs = 4
    c.selfplay.seed_file = SEED_FILE
    c.selfplay.prompt_format = "chat"  # an instruct model: its own chat template
    c.selfplay.prompt_file = COMPACT_PROMPTS
    # Start each answer in the expected format: a 135M model rarely finds it unaided.
    think = "<think>\n</think>\n<answer>\n"
    for t in ("deduction", "abduction"):
        c.prefix[f"{t}_propose"] = think + "```python\ndef f("
    # Solver answers as the comment after the call, an idiom a small code model completes
    # (with a ```output block it writes an empty block); selfplay.solve_prefix fills {input}.
    c.prefix.deduction_solve = think + "```python\nprint(f({input}))  # Output: "
    c.prefix.abduction_solve = think + "```python\nprint(f(x))  # Output: {output}\n# Input: "
    c.prefix.induction_propose = think + "```input\n"
    c.prefix.induction_solve = think + "```python\ndef f("
    # Small-model levers (default off; BENCHMARKS.md, "Learning"): end each answer at the
    # fence that completes it (pipeline/answer_stop.py), and open the proposer's next block
    # after each closed one (pipeline/scaffold.py; those tokens are not trained on).
    c.selfplay.close_answer = True
    inp = "\n```input\n"
    c.scaffold.deduction_propose = c.scaffold.abduction_propose = (inp,)
    c.scaffold.induction_propose = (inp,) * (c.selfplay.num_inputs - 1) + ("\n```message\n",)
    c.optim.lr = 1e-6
    c.optim.weight_decay = 0.0  # as measured (BENCHMARKS.md); the paper recipes: 0.01
    c.optim.micro_batches = 2
    c.executor.workers = 1
    c.trainer.steps = 3
    c.trainer.checkpoint_every = 3
    c.trainer.keep = 1
    return c
