"""The paper-faithful base config of AZR training; recipes import it and override fields.

Defaults follow "Absolute Zero" (Zhao et al., 2025) and the official trainer: batch 64 per
task type and role, K = 6 references, n = 8 learnability rollouts, 10 induction inputs,
AdamW lr 1e-6 in steps of 128 sequences, temperature 1.0, no KL, TRR++ advantages,
PPO-clip 0.2, entropy bonus 0.001, on-policy.
Every field can be overridden on the command line with `--config.section.key=value`.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from azr_jax.rl.advantages import EPS as ADV_EPS
from azr_jax.rl.losses import LossConfig
from azr_jax.rl.optim import OptimConfig
from azr_jax.selfplay import SelfPlayConfig, registry


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    c.model = ml_collections.ConfigDict(dict(
        preset="qwen2.5-7b",  # a preset name; used when `path` is empty
        path="",  # a HF directory or a .gguf file (overrides `preset` when set)
        dtype="bfloat16",  # activation / matmul dtype
        param_dtype="float32",  # master weights and optimizer state
        remat="full",  # per-layer rematerialisation: none | full | dots | ...
        attention_block=0,  # query tokens per attention block; 0 = whole sequence at once
        attention_impl="auto",  # xla | cudnn | splash | auto (cudnn on GPU, splash on TPU, else xla)
    ))

    # Sizes may be -1 for "all remaining devices".
    c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))

    c.sampling = ml_collections.ConfigDict(dict(
        temperature=1.0,
        top_p=1.0,
        top_k=0,  # 0 = off
        max_prompt_len=6144,  # a longer prompt is re-drawn with other references, never cut
        max_new_tokens=8096,  # the paper's max response length
        prompt_bucket="pow2",  # prompt padding policy (azr_jax.sampling BUCKET_POLICIES)
        # >0: decode slots: more rows than this run through that many slots, a finished
        # row's slot taking the next prompt (continuous batching); bounds the KV cache
        max_rows_per_call=0,
        decode_chunk=4,  # decode steps between slot refills (K; BENCHMARKS.md: measured on CPU)
        # prefill each distinct prompt once, its samples (and repeats) copying its KV cache;
        # False: one prefill per row (for benchmarks). Same tokens either way.
        share_prefixes=True,
        # KV cache: dense (each slot reserves prompt + max_new_tokens) | paged (a pool of
        # kv_pages pages of page_size tokens; a row holds the pages its tokens fill; 0 = auto)
        kv_layout="dense",
        page_size=16,
        kv_pages=0,
    ))

    # azr_jax.selfplay.SelfPlayConfig's fields with its defaults: the official trainer's
    # rules (docs/FIDELITY.md has one row per rule; the dataclass documents each field).
    c.selfplay = ml_collections.ConfigDict(dataclasses.asdict(SelfPlayConfig()))

    # Fixed probes (azr_jax/pipeline/probe.py): greedy solver accuracy every `every` steps
    # (0 = off) on tasks built from `heldout_file` (programs unlike the seeds: probe/heldout/*)
    # and `file` (the seed programs with new inputs, i.e. recall: probe/seen/*); "" = no such
    # probe; never in the buffers. passk_samples = n > 0: pass@1..n from n samples per task at
    # temperature 1, at step 0 and after the last step (0 = off).
    c.probe = ml_collections.ConfigDict(dict(every=0, file="", heldout_file="", passk_samples=0))

    # Text the assistant's turn starts with, per (task type, role): part of the prompt (not
    # trained on), prepended to the response before parsing. Empty in the paper's setting;
    # a small model can use it to learn the answer format from its first step.
    # Keys: every registered task type's (registry.config_keys), plug-ins included.
    c.prefix = ml_collections.ConfigDict({k: "" for k in registry.config_keys()})
    # Texts the rollout writes into a response, per (task type, role): the k-th right after
    # the response closes its (k+1)-th code block, then sampling resumes (not trained on;
    # azr_jax/pipeline/scaffold.py). Empty in the paper's setting.
    c.scaffold = ml_collections.ConfigDict({k: () for k in registry.config_keys()})

    # The policy loss's fields with azr_jax.rl.losses.LossConfig's defaults (the official
    # ones, defined there once); a config holds plain numbers, so 0 means "off"/"same".
    loss = dataclasses.asdict(LossConfig())
    c.rl = ml_collections.ConfigDict(dict(
        estimator="trr++",  # trr++ (token whitening, official) | trr++_seq | reinforce++ | grpo
        loss=loss.pop("name"),  # azr_jax.rl.losses registry
        clip_eps_high=loss.pop("clip_eps_high") or loss["clip_eps"],
        dual_clip=loss.pop("dual_clip") or 0.0,  # 0 = off; else the dual-clip constant c > 1
        adv_eps=ADV_EPS,  # trr++/reinforce++: inside sqrt(token variance + eps), as official
        **loss,  # clip_eps, aggregation, kl_coef, kl_estimator, entropy_coef
    ))

    # azr_jax.rl.optim.OptimConfig's fields with its defaults (AdamW, lr 1e-6, constant),
    # but 128 sequences per AdamW step (the official ppo_mini_batch_size). Its total_steps
    # is trainer.steps.
    optim = dataclasses.asdict(OptimConfig(mini_batch_size=128))
    del optim["total_steps"]
    c.optim = ml_collections.ConfigDict(optim)

    c.executor = ml_collections.ConfigDict(dict(
        workers=0,  # sandbox worker processes per host; 0 = the host's cores less a reserve
        memory_mb=1024,
        # isolation tiers (docs/sandbox.md): every job gets a fresh child, so no
        # program or answer can change another's verdict; "reuse" is the opt-in faster tier
        isolation="process",
        grading_isolation="process",
    ))

    # Benchmarks run on the current parameters every trainer.eval_every steps (metrics
    # "<suite>/<metric>" in metrics.jsonl). suites: names from azr_jax.evals (humaneval,
    # cruxeval-o, cruxeval-i, math); data: one path per suite, "" = the suite's default.
    c.eval = ml_collections.ConfigDict(dict(
        suites=(),
        data=(),
        limit=0,  # first N problems of each suite; 0 = all
        max_new_tokens=512,
        batch_size=16,
    ))

    # What a run logs besides metrics.jsonl, tasks.jsonl and solves.jsonl: sample texts per
    # logged step in TensorBoard, and optional Weights & Biases (azr_jax/pipeline/wandb_logger.py;
    # pip install -e .[wandb]); wandb_mode: online | offline (WORKDIR/wandb, `wandb sync`).
    c.logging = ml_collections.ConfigDict(dict(
        tb_samples=2,  # proposals and solver rollouts per role written as text each step
        wandb=False,
        wandb_project="azr-jax",
        wandb_mode="online",
        wandb_name="",  # "" = W&B's own run name
    ))

    c.trainer = ml_collections.ConfigDict(dict(
        steps=500,
        seed=0,
        checkpoint_every=50,
        keep=3,
        staleness=0,  # 0 = strictly on-policy; 1 = rollouts of step t+1 overlap update t
        log_every=1,
        eval_every=0,  # 0 = off; see the eval section
        progress=True,  # tqdm progress bar on process 0
    ))
    return c
