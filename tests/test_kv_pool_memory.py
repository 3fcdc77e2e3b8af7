"""The memory estimator's paged KV cache (sampling.kv_layout="paged"): the pool term equals a
real pool's bytes, the pool is one data shard's (the kv_pages setting or the engine's
automatic size), and the paper recipes' pool is slots x expected live tokens."""

import jax
import numpy as np

from azr_jax.models import get_preset
from azr_jax.models.paged_cache import init_pool
from azr_jax.pipeline import recipe_memory
from azr_jax.pipeline.config import load_config
from azr_jax.sampling.paged import auto_kv_pages
from azr_jax.sharding import memory

SHAPES = dict(train_rows=1, train_len=8, rollout_rows=3, prompt_len=8, cache_len=40)


def test_pool_term_matches_a_real_pool():
    cfg = get_preset("tiny").replace(dtype="bfloat16")
    for per_layer in (False, True):
        pool = init_pool(cfg, num_pages=25, page_size=16, per_layer=per_layer)
        real = sum(np.asarray(x).nbytes for x in jax.tree.leaves(pool))
        est = memory.estimate_memory(cfg, (1, 1, 1), kv_pool_tokens=25 * 16, **SHAPES)
        assert est.rollout_kv == real
    dense = memory.estimate_memory(cfg, (1, 1, 1), **SHAPES)
    assert est.rollout_prefill > dense.rollout_prefill  # + the prompts' cache before paging


def test_pool_pages_for_slots_and_live_tokens():
    assert recipe_memory.paged_pool_pages(4, 33, 16) == 4 * (3 + 1) + 1
    assert recipe_memory.paged_pool_pages(4, 32, 16) == 4 * (2 + 1) + 1
    # the engine's automatic size is the same rule with every row at its longest
    assert auto_kv_pages(8, 100, 200, 16) == recipe_memory.paged_pool_pages(8, 300, 16)


def _kv(*overrides, slice_=None):
    est, report = recipe_memory.recipe_report("qwen2_5_7b", slice_, list(overrides), 512)
    return est.rollout_kv, report


def test_recipe_pool_is_one_shards_setting_or_automatic_size():
    c = get_preset("qwen2.5-7b")
    per_token = 2 * c.num_layers * c.num_kv_heads * c.head_dim * 2  # bf16 k and v, every head
    kv, report = _kv("--config.sampling.kv_pages=1000")
    assert kv == 1000 * 16 * per_token
    assert "KV: paged, 1000 pages of 16 tokens per data shard (sampling.kv_pages)" in report
    kv, report = _kv("--config.sampling.kv_pages=0")
    # 512 slots over the 16 data shards of v5p-128 (tensor 4); prompts bucketed to 6144
    assert kv == auto_kv_pages(32, 6144, 8096, 16) * 16 * per_token
    assert "(auto: every slot its longest row)" in report
    # auto holds the dense cache's tokens: the same bytes, less the KV heads' tensor split
    dense, _ = _kv("--config.sampling.kv_layout=dense")
    assert 0.95 * 4 * dense < kv < 1.05 * 4 * dense
    # on half the chips a shard keeps the kv_pages setting; the dense cache per chip doubles
    small = ["--config.mesh.fsdp=8"]
    assert _kv(*small, slice_="v5p-64")[0] == _kv()[0]
    assert _kv(*small, "--config.sampling.kv_layout=dense", slice_="v5p-64")[0] == 2 * dense


def test_paper_recipes_page_their_kv_cache():
    pages = recipe_memory.paged_pool_pages(512 // 16, 2048, 16)
    for name in ("qwen2_5_3b", "qwen2_5_7b", "qwen2_5_14b", "llama3_1_8b"):
        c = load_config(name)
        assert (c.sampling.kv_layout, c.sampling.page_size, c.sampling.kv_pages) == \
            ("paged", 16, pages), name
    _, report = _kv("--config.sampling.kv_layout=dense")
    assert "KV: paged" not in report  # the dense layout prints no pool
