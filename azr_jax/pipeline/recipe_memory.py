"""Memory of a training recipe: the sizes a config implies (`recipe_shapes`) fed to the
per-device estimate of `azr_jax.sharding.memory`, and the report of
`python -m azr_jax.pipeline.recipe_memory configs/<recipe>.py`.

Kept in pipeline because it reads training configs (recipe files, sampler buckets, the
trainer's rollout call size); sharding.memory only knows models and meshes.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Optional

from azr_jax.errors import UserError
from azr_jax.models import get_preset
from azr_jax.pipeline.config import apply_overrides, load_config_file, resolve_config_path
from azr_jax.sampling.config import (BUCKET_POLICIES, SamplingConfig, padded_batch_size,
                                     slot_cache_len)
from azr_jax.sampling.page_pool import pages_for
from azr_jax.sampling.paged import auto_kv_pages
from azr_jax.sharding.memory import MemoryEstimate, estimate_memory, slice_chips
from azr_jax.sharding.mesh import MeshConfig

# Rows per sampler call the paper recipes are sized for: one task type's learnability
# rollouts (64 tasks x n=8). See `recipe_shapes`.
CHUNKED_ROLLOUT_ROWS = 512


def paged_pool_pages(rows: int, live_tokens: int, page_size: int) -> int:
    """A page pool (of one data shard) for `rows` decode slots of `live_tokens` tokens each on
    average (prompt + response so far): their pages, one partial prompt page per row (the
    engine's master copy) and the reserved NULL page; `auto_kv_pages` is the same rule with
    every row at its longest."""
    return rows * (pages_for(live_tokens, page_size) + 1) + 1


def _sampling(cfg, key: str):
    """A sampling setting of a config, or the SamplingConfig default where it lacks one."""
    default = getattr(SamplingConfig, key)
    return cfg.sampling.get(key, default) if hasattr(cfg.sampling, "get") else default


def page_pool(cfg, slots: int, prompt_len: int) -> Optional[tuple[int, int, str]]:
    """(pages, page size, where the count comes from) of one data shard's page pool for
    `slots` decode slots of that shard, as the engine sizes it (`sampling.paged.generate`);
    None for the dense layout."""
    if _sampling(cfg, "kv_layout") != "paged":
        return None
    size, pages = _sampling(cfg, "page_size"), _sampling(cfg, "kv_pages")
    if pages:
        return pages, size, "sampling.kv_pages"
    return (auto_kv_pages(slots, prompt_len, cfg.sampling.max_new_tokens, size), size,
            "auto: every slot its longest row")


def recipe_shapes(cfg, num_devices: int, rollout_rows: Optional[int] = None) -> dict:
    """The sizes a training config implies on `num_devices` devices.

    Update batch: 2 roles x task types x `batch_per_group` sequences, or one mini-batch of
    `optim.mini_batch_size` of them when smaller (one AdamW step's rows), split over the
    data-parallel devices and `optim.micro_batches`. Rollouts: the largest sampler call. The
    trainer (azr_jax.pipeline.rollout) samples every learnability rollout of a step in one
    call: task types x batch_per_group x num_rollouts rows padded to a power of two at once,
    or, with more rows than `sampling.max_rows_per_call`, that many decode slots (continuous
    batching) whose cache holds `slot_cache_len` slots; `rollout_rows` overrides the rows.
    With `sampling.kv_layout="paged"` the cache is the page pool (`page_pool`), its pages
    split over the data shards: `kv_pool_tokens` = one shard's pages x page size.
    """
    mesh = MeshConfig(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor).shape(num_devices)
    dp = mesh[0] * mesh[1]
    groups = 2 * len(cfg.selfplay.task_types)
    update_rows = groups * cfg.selfplay.batch_per_group
    micro = cfg.optim.micro_batches
    mini = cfg.optim.get("mini_batch_size", 0) if hasattr(cfg.optim, "get") else 0
    if 0 < mini < update_rows:  # one optimizer step's rows (azr_jax.rl.minibatch)
        update_rows = mini
    if update_rows % (dp * micro):
        raise ValueError(f"update batch {update_rows} (a mini-batch when optim.mini_batch_size "
                         f"is set) is not a multiple of data-parallel devices ({dp}) x "
                         f"micro_batches ({micro})")
    cap = cfg.sampling.get("max_rows_per_call", 0) if hasattr(cfg.sampling, "get") else 0
    if rollout_rows is None:
        rows = len(cfg.selfplay.task_types) * cfg.selfplay.batch_per_group * cfg.selfplay.num_rollouts
        rollout_rows = padded_batch_size(rows, dp)
        if 0 < cap < rows:  # `cap` decode slots, refilled (sampling.continuous)
            rollout_rows = -(-cap // dp) * dp
    prompt = BUCKET_POLICIES[cfg.sampling.prompt_bucket](cfg.sampling.max_prompt_len)
    cache_len = prompt + cfg.sampling.max_new_tokens  # one static call
    if cap:  # the slots' cache has room for the compaction's chunks
        chunk = cfg.sampling.get("decode_chunk", SamplingConfig.decode_chunk)
        cache_len = slot_cache_len(prompt, cfg.sampling.max_new_tokens, chunk)
    pool = page_pool(cfg, -(-rollout_rows // dp), prompt)
    return dict(mesh=mesh, train_rows=update_rows // (dp * micro),
                train_len=prompt + cfg.sampling.max_new_tokens,
                rollout_rows=-(-rollout_rows // dp), prompt_len=prompt, cache_len=cache_len,
                kv_pool_tokens=pool[0] * pool[1] if pool else 0)


def model_config_of(cfg):
    """The ModelConfig of a training config's model section (a preset)."""
    return get_preset(cfg.model.preset).replace(
        dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype, remat=cfg.model.remat,
        attention_block=cfg.model.get("attention_block", 0),
        attention_impl=cfg.model.get("attention_impl", "xla"))


def estimate_for_config(cfg, num_devices: int, rollout_rows: Optional[int] = None) -> MemoryEstimate:
    shapes = recipe_shapes(cfg, num_devices, rollout_rows)
    mesh = shapes.pop("mesh")
    return estimate_memory(model_config_of(cfg), mesh, **shapes)


def recipe_report(path_or_name: str, accelerator_type: Optional[str] = None,
                  overrides=(), rollout_rows: Optional[int] = None) -> tuple[MemoryEstimate, str]:
    """(estimate, printable report) of a recipe file on its TPU_SLICE (or `accelerator_type`),
    after `--config.key=value` overrides."""
    path = resolve_config_path(path_or_name)
    config = apply_overrides(load_config_file(path), overrides)
    if accelerator_type is None:
        spec = importlib.util.spec_from_file_location("_azr_recipe_slice", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        accelerator_type = getattr(module, "TPU_SLICE", None)
        if accelerator_type is None:
            raise UserError(f"{path} names no TPU_SLICE; pass --slice (e.g. v5p-64)")
    try:
        chips, hbm = slice_chips(accelerator_type)
    except ValueError as e:
        raise UserError(str(e)) from None
    estimate = estimate_for_config(config, chips, rollout_rows)
    shapes = recipe_shapes(config, chips, rollout_rows)
    head = (f"{os.path.basename(path)} on {accelerator_type} ({chips} chips): "
            f"{config.model.preset}, remat={config.model.remat}, "
            f"attention_block={config.model.get('attention_block', 0)}, "
            f"attention_impl={config.model.get('attention_impl', 'xla')}, "
            f"micro_batches={config.optim.micro_batches}\n"
            f"  per device: {shapes['train_rows']} row(s) x {shapes['train_len']} tokens per "
            f"micro-batch; rollout call {shapes['rollout_rows']} rows x {shapes['cache_len']} slots")
    pool = page_pool(config, shapes["rollout_rows"], shapes["prompt_len"])
    if pool:
        pages, size, source = pool
        head += (f"\n  KV: paged, {pages} pages of {size} tokens per data shard ({source}) = "
                 f"{pages * size} token slots per device, "
                 f"{(pages - 1) * size // shapes['rollout_rows']} per decode slot")
    return estimate, head + "\n" + estimate.table(hbm)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Parameter count and per-device memory of recipes; extra "
                    "--config.key=value flags override the recipes (e.g. --config.mesh.fsdp=8).")
    parser.add_argument("configs", nargs="+", help="recipe files or names under configs/")
    parser.add_argument("--slice", default=None, help="TPU slice (default: the recipe's TPU_SLICE)")
    parser.add_argument("--rollout-rows", type=int, default=None,
                        help="global rows per sampler call (default: what the trainer does; "
                             f"the recipes are sized for {CHUNKED_ROLLOUT_ROWS})")
    args, overrides = parser.parse_known_args(argv)
    try:
        for name in args.configs:
            print(recipe_report(name, args.slice, overrides, args.rollout_rows)[1])
    except UserError as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
