"""The sampler work of one paper-shaped AZR step: today's dense path against shared prefixes
and the paged KV cache, alone and together.

One step of the paper's recipe (configs/paper.py) makes three sampler calls, here at
`--scale` of its size (B = 64 x scale tasks per type and role):
- propose: 3 x B proposer prompts (K = 6 reference programs from the buffers; induction:
  one program), one sample each;
- learnability: 8 solver samples of each valid proposal (B x `--valid` per type);
- solve: 3 x B solver prompts from the buffers (repeats where the buffer is small), one each.
Prompts are the real ones (azr_jax.selfplay prompts, the paper's R1 format, over buffers
seeded with the seed programs of configs/seeds/, outputs computed by the executor), tokenized
with the bundled SmolLM2-135M-Instruct, which samples them (f32, temperature 1). Response
lengths are heavy-tailed: a log-normal (median `--median`, sigma `--sigma`) capped at `--cap`,
forced through `sample(budgets=...)` with no stop tokens, so every variant does the same work.
Each call runs through `--slots` decode slots (continuous batching, `max_rows_per_call`).
With `--paged-slots N` the paged variants run N slots over a pool of the dense cache's bytes
(`--slots` x (the call's padded prompt + cap) tokens): what paging buys in one memory budget.

Variants (SamplingConfig fields; a variant whose field this checkout lacks is skipped):
dense (share_prefixes=False, kv_layout="dense": the trainer before issue 33), shared
(share_prefixes only), paged (kv_layout="paged" only), shared+paged. Each runs once on short
budgets first (compiles), then timed runs interleaved; useful tokens/s = the budgets' sum /
the step's sampler seconds (best run). Every variant's tokens are compared with dense's.

    .venv/bin/python benchmarks/rollout_paper.py [--scale 0.03125] [--valid 0.5] [--slots 16]
        [--median 100] [--sigma 1.0] [--cap 512] [--repeats 1] [--threads N] [--page-size P]
        [--paged-slots N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from cpu_env import measure_machine, use_cpu_threads
from lengths import heavy_tailed

SEED_FILES = "configs/seeds/learn.jsonl,configs/seeds/learn_induction.jsonl"
VARIANTS = {  # name -> SamplingConfig fields
    "dense": dict(share_prefixes=False, kv_layout="dense"),
    "shared": dict(share_prefixes=True, kv_layout="dense"),
    "paged": dict(share_prefixes=False, kv_layout="paged"),
    "shared+paged": dict(share_prefixes=True, kv_layout="paged"),
}
OFF = dict(share_prefixes=False, kv_layout="dense")  # what a checkout without the field does


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1 / 32, help="of the paper's 64 tasks per group")
    p.add_argument("--valid", type=float, default=0.5, help="share of proposals that are valid")
    p.add_argument("--rollouts", type=int, default=8, help="learnability samples per valid task")
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--median", type=float, default=100.0)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--cap", type=int, default=512)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--page-size", type=int, default=0, help="paged variants (0 = the default)")
    p.add_argument("--paged-slots", type=int, default=0,
                   help="paged variants: this many slots in the dense cache's bytes (0: --slots)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    return p.parse_args()


def paper_prompts(tokenizer, per_group: int, valid: int, rng):
    """{call: (distinct prompts as token lists)}: the step's proposer, learnability (the
    valid tasks' solver prompts) and solver prompts, each type in turn."""
    from azr_jax import selfplay as sp
    from azr_jax.executor import SandboxConfig, SandboxPool

    cfg = sp.SelfPlayConfig(seed_file=SEED_FILES, num_references=6)
    pool = SandboxPool(SandboxConfig(workers=2, timeout_s=10.0))
    try:
        buffers = sp.Buffers.from_config(cfg, pool)
    finally:
        pool.close()
    encode = lambda m: tokenizer.encode(sp.render_messages(m, None, cfg),  # noqa: E731
                                        add_special_tokens=False)
    calls = {"propose": [], "learnability": [], "solve": []}
    for t in cfg.task_types:
        calls["propose"] += [encode(r.messages)
                             for r in sp.proposer_requests(t, buffers, per_group, rng, cfg)]
        # a valid proposal is a new task: distinct buffer tasks stand in for them
        pick = rng.choice(len(buffers[t]), size=min(valid, len(buffers[t])), replace=False)
        tasks = list(buffers[t])
        calls["learnability"] += [encode(sp.solver_task(t, tasks[i], cfg).messages) for i in pick]
        calls["solve"] += [encode(sp.solver_task(t, x, cfg).messages)
                           for x in sp.fill_tasks(t, buffers, per_group, rng)]
    return calls


def known_variants(sampling_cls, names):
    """The variants this checkout can run: a field it lacks is dropped where the variant asks
    for today's behaviour (OFF); a variant that needs it is skipped."""
    fields = {f.name for f in dataclasses.fields(sampling_cls)}
    out = {}
    for name in names:
        changes = VARIANTS[name]
        missing = sorted(k for k, v in changes.items() if k not in fields and OFF[k] != v)
        if missing:
            print(f"variant {name}: skipped (SamplingConfig has no {', '.join(missing)} yet)")
        else:
            out[name] = {k: v for k, v in changes.items() if k in fields}
    return out


def main() -> int:
    args = parse_args()
    use_cpu_threads(args.threads)
    import jax
    import numpy as np

    from azr_jax.checkpoints import load_model
    from azr_jax.sampling import SamplingConfig, prepare_params, sample

    loaded = load_model("smollm2-135m", dtype="float32", progress=False)
    cfg = loaded.config
    params = prepare_params(loaded.params, cfg)
    rng = np.random.default_rng(0)
    per_group = max(1, round(64 * args.scale))
    prompts = paper_prompts(loaded.tokenizer, per_group, max(1, round(per_group * args.valid)), rng)
    samples = {"propose": 1, "learnability": args.rollouts, "solve": 1}
    rows = {c: len(p) * samples[c] for c, p in prompts.items()}
    budgets = {c: heavy_tailed(rng, n, args.median, args.sigma, args.cap)
               for c, n in rows.items()}
    short = {c: rng.integers(1, 9, size=n).astype(np.int32) for c, n in rows.items()}
    useful = int(sum(b.sum() for b in budgets.values()))
    base = SamplingConfig(max_new_tokens=args.cap, temperature=1.0, stop_token_ids=(),
                          prompt_bucket="mult64", max_rows_per_call=args.slots)
    variants = known_variants(SamplingConfig, args.variants.split(","))
    if args.page_size:
        for v in variants.values():
            if v.get("kv_layout") == "paged":
                v["page_size"] = args.page_size

    print(f"one AZR step at scale {args.scale:g}: {per_group} tasks per type and role, "
          f"{len(prompts['learnability'])} valid x {args.rollouts} learnability samples; "
          f"slots {args.slots}, threads {args.threads}, backend {jax.default_backend()}")
    if args.paged_slots:
        print(f"paged variants: {args.paged_slots} slots in the dense cache's KV bytes")
    for c, p in prompts.items():
        lens = np.asarray([len(x) for x in p])
        print(f"  {c:<12} {rows[c]:4d} rows of {len(p):3d} prompts ({lens.min()}-{lens.max()} "
              f"tokens, {int(lens.sum()) * samples[c]} prompt tokens over the rows); response "
              f"lengths median {np.median(budgets[c]):.0f}, max {budgets[c].max()}, "
              f"sum {budgets[c].sum()}")
    print(f"useful tokens per step: {useful}")
    print(measure_machine(), flush=True)

    def same_memory(sc, p):
        """sc with --paged-slots slots over a pool of the dense cache's bytes for prompts p."""
        if sc.kv_layout != "paged" or not args.paged_slots:
            return sc
        dense_tokens = args.slots * (sc.padded_prompt_length(max(len(x) for x in p)) + args.cap)
        return sc.replace(max_rows_per_call=args.paged_slots,
                          kv_pages=-(-dense_tokens // sc.page_size) + 1)

    def step(changes, lengths):
        sc = base.replace(**changes)
        out = {}
        for i, (c, p) in enumerate(prompts.items()):
            key = jax.random.fold_in(jax.random.PRNGKey(0), i)
            res = sample(params, cfg, p, key, same_memory(sc, p).replace(num_samples=samples[c]),
                         budgets=lengths[c])
            assert (res.lengths == lengths[c]).all()
            out[c] = res.tokens
        return out

    for name, changes in variants.items():
        t = time.perf_counter()
        step(changes, short)
        print(f"warm-up {name} (short rows, compiles included): {time.perf_counter() - t:.1f} s",
              flush=True)
    seconds = {name: [] for name in variants}
    ref, same = None, {}
    for r in range(args.repeats):
        for name, changes in variants.items():
            t = time.perf_counter()
            got = step(changes, budgets)
            seconds[name].append(time.perf_counter() - t)
            ref = ref if ref is not None else got
            same[name] = all((ref[c][i, :n] == got[c][i, :n]).all()
                             for c in prompts for i, n in enumerate(budgets[c]))
            print(f"run {r} {name:<13} {seconds[name][-1]:7.1f} s  "
                  f"{useful / seconds[name][-1]:7.1f} useful tok/s  tokens equal to "
                  f"{next(iter(variants))}: {same[name]}", flush=True)
    first = next(iter(variants))
    best = {name: useful / min(s) for name, s in seconds.items()}
    print("useful tokens/s (best): " + ", ".join(
        f"{name} {rate:.1f} ({rate / best[first]:.2f}x)" for name, rate in best.items()))
    if "shared+paged" in best and first == "dense":
        print(f"ratio shared+paged / dense: {best['shared+paged'] / best['dense']:.2f}x "
              f"(goal >= 1.5x); tokens equal: {all(same.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
