"""One process of the multi-process trainer tests: `train` on configs/tiny_cpu.py.

    AZR_COORDINATOR_ADDRESS=localhost:PORT AZR_NUM_PROCESSES=N AZR_PROCESS_ID=I \
        python tests/trainer_worker.py WORKDIR RECORD_DIR STEPS [section.key=value ...] [--slow]

The processes find each other the way `azr-jax train` does (`initialize_distributed()` reads
the AZR_* variables); without them it is one process.

A responder replaces odd sampled rows with well-formed responses (the tiny random model
writes gibberish), so the executor validates and grades real programs. Each process records
its own view of every step (task outcomes, rewards, batch and buffer digests) in
RECORD_DIR/process<i>.jsonl: process 1 writes no metrics, so this is how the test sees it.

--slow: deduction proposals are a program that busy-loops for about half a second, and
process 1's sandbox gets a 0.2 s limit while process 0's keeps tiny_cpu's 2 s: a program that one host's
sandbox times out and the other's does not.

--distinct: proposals' inputs count the sampler calls, so every call proposes new triplets
(the seeding phase drops repeats and would never fill its pool otherwise).

--sigterm-at-step N: the process sends itself SIGTERM once step N's rollout is done; the
trainer finishes that step, saves it and stops (exit code 143, as `azr-jax train`).
"""

import hashlib
import json
import os
import signal
import sys

SLOW_PROGRAM = "def f(x):return x+0*sum(range(3*10**7))"  # ~0.5 s of CPU
SLOW_HOST_TIMEOUT_S = 0.2


def _canned(prompt_text, row, slow, call=0):
    """Official-format responses for the tiny prompt pack (configs/prompts/tiny.json); the
    assistant turn already opened with <think>. Even rows keep the model's own sample."""
    if row % 2 == 0:
        return None
    row += 100 * call  # --distinct: new inputs on every sampler call
    if "```input blocks and a ```message" in prompt_text:  # induction proposer
        # tiny_cpu asks for selfplay.num_inputs = 4 (10 would not fit max_new_tokens=128)
        body = "".join(f"```input\n{i}\n```" for i in range(4)) + "```message\nsame\n```"
    elif "Propose a new" in prompt_text:  # deduction/abduction proposer
        program = SLOW_PROGRAM if slow else f"def f(x):return x*{row % 5}"
        # abduction's inputs differ from deduction's: identical jobs run once (run_unique),
        # and the slow ones must still fall on both processes
        given = row + 50 * ("abduction task" in prompt_text)
        body = f"```python\n{program}\n```\n```input\n{given}\n```"
    elif "give ```python" in prompt_text:  # induction solver
        body = "```python\ndef f(x):return x\n```"
    else:  # deduction/abduction solver
        body = "'Hello World'"
    return f"</think><answer>{body}</answer>"


def _install_responder(slow, distinct=False):
    from canned_sampling import canned_sample  # tests/ is this script's directory

    from azr_jax.pipeline import rollout as rollout_mod

    calls = [0]

    def respond(text, row):
        calls[0] += row == 0 and distinct  # row 0 opens a sampler call
        return _canned(text, row, slow, calls[0])

    rollout_mod.sample = canned_sample(rollout_mod.sample, respond)


def _slow_sandbox_on(process_id):
    """Give this process's sandbox a short per-program limit (see --slow)."""
    import dataclasses

    from azr_jax.pipeline import setup  # builds the trainer's SandboxConfig

    real = setup.SandboxConfig

    def config(**kw):
        return dataclasses.replace(real(**kw), timeout_s=SLOW_HOST_TIMEOUT_S)

    if process_id == 1:
        setup.SandboxConfig = config


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _recording_rollout(path, sigterm_at=None):
    import numpy as np

    from azr_jax.pipeline.rollout import run_rollout

    def rollout(ctx, step, params):
        r = run_rollout(ctx, step, params)
        rec = {"step": step,
               "tasks": [[t["type"], t["outcome"], t["error"], t["reward"], t["program"]]
                         for t in r.task_rows],
               "metrics": {k: v for k, v in r.metrics.items() if not k.startswith("time/")},
               "batch": {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16]
                         for k, v in sorted(r.batch.items())},
               "buffers": _digest(ctx.buffers.to_dict())}
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if step == sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return r

    return rollout


def main(argv):
    slow, distinct = "--slow" in argv, "--distinct" in argv
    sigterm_at = None
    if "--sigterm-at-step" in argv:
        i = argv.index("--sigterm-at-step")
        sigterm_at = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    argv = [a for a in argv if a not in ("--slow", "--distinct")]
    workdir, record_dir, steps = argv[0], argv[1], int(argv[2])
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import jax

    from azr_jax.sharding import initialize_distributed

    initialize_distributed()
    pid = jax.process_index()
    from azr_jax.errors import Preempted
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.trainer import train

    _install_responder(slow, distinct)
    # checkpoint the last step only (the resume point): each Orbax save costs seconds here
    overrides = [f"trainer.steps={steps}", "sampling.max_new_tokens=128",
                 "trainer.checkpoint_every=100"] + argv[3:]
    if slow:
        _slow_sandbox_on(pid)
    cfg = load_config("tiny_cpu", overrides)
    os.makedirs(record_dir, exist_ok=True)
    record = os.path.join(record_dir, f"process{pid}.jsonl")
    try:
        train(cfg, workdir, rollout_fn=_recording_rollout(record, sigterm_at))
    except Preempted as e:
        print("PREEMPTED", pid, e, flush=True)
        sys.exit(143)
    print("DONE", pid, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
