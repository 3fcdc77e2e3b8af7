"""Paper recipes: they load, carry the paper's hyperparameters, have the published model
sizes (from jax.eval_shape) and fit their TPU slice by the memory estimator."""

import importlib
import math
import re

import jax
import numpy as np
import pytest

from azr_jax.models import get_preset, init_cache
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline import recipe_memory
from azr_jax.sharding import memory
from azr_jax.sharding.mesh import MeshConfig, logical_shardings, make_mesh

# recipe -> (published parameter count in billions, preset)
RECIPES = {
    "qwen2_5_3b": (3.09, "qwen2.5-3b"),
    "qwen2_5_7b": (7.62, "qwen2.5-7b"),
    "qwen2_5_14b": (14.7, "qwen2.5-14b"),
    "qwen2_5_coder_3b": (3.09, "qwen2.5-coder-3b"),
    "qwen2_5_coder_7b": (7.62, "qwen2.5-coder-7b"),
    "qwen2_5_coder_14b": (14.7, "qwen2.5-coder-14b"),
    "llama3_1_8b": (8.03, "llama3.1-8b"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_loads_with_paper_hyperparameters(name):
    c = load_config(name)
    assert c.model.preset == RECIPES[name][1]
    assert c.selfplay.batch_per_group == 64 and c.selfplay.num_references == 6
    assert c.selfplay.num_rollouts == 8 and c.selfplay.num_inputs == 10
    assert c.optim.lr == 1e-6 and c.rl.kl_coef == 0.0 and c.rl.estimator == "trr++"
    assert c.sampling.temperature == 1.0 and c.sampling.max_new_tokens == 8096
    assert c.model.remat == "full"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_parameter_count_matches_published_size(name):
    published, preset = RECIPES[name]
    count = memory.param_count(get_preset(preset))  # jax.eval_shape of the real module
    # Model cards give 3 significant digits, rounded (3.09B for 3,085,938,688) or truncated
    # (Qwen2.5-14B: 14,770,033,664 -> "14.7B"; its safetensors hold 29.54 GB of bf16).
    digits = 2 if published < 10 else 1
    x = count / 1e9
    assert published in (round(x, digits), math.floor(x * 10**digits) / 10**digits), count
    assert count == get_preset(preset).num_params()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_mesh_fills_its_slice_and_fits_hbm(name):
    module = importlib.import_module(f"configs.{name}")
    chips, hbm_gib = memory.slice_chips(module.TPU_SLICE)
    c = load_config(name)
    assert math.prod(MeshConfig(c.mesh.data, c.mesh.fsdp, c.mesh.tensor).shape(chips)) == chips
    estimate, report = recipe_memory.recipe_report(name, rollout_rows=recipe_memory.CHUNKED_ROLLOUT_ROWS)
    assert f"{estimate.num_params / 1e9:.2f}B parameters" in report and "fits" in report
    assert estimate.peak <= 0.85 * hbm_gib * memory.GIB


def test_7b_arithmetic_in_the_recipe_matches_the_estimator():
    doc = importlib.import_module("configs.qwen2_5_7b").__doc__
    written = {k: float(v) for k, v in re.findall(r"(training|rollout) peak\s+~ (\d+) GiB", doc)}
    xla = ["--config.model.attention_impl=xla"]  # the docstring's arithmetic
    estimate, _ = recipe_memory.recipe_report("qwen2_5_7b", rollout_rows=512, overrides=xla)
    assert abs(estimate.train_peak / memory.GIB - written["training"]) < 1.0
    assert abs(estimate.rollout_peak / memory.GIB - written["rollout"]) < 1.0
    # The smaller slice named in the docstring fits with attention blocks (~28 GiB)...
    small, report = recipe_memory.recipe_report("qwen2_5_7b", "v5p-64", ["--config.mesh.fsdp=8"] + xla, 512)
    assert "fits" in report and abs(small.peak / memory.GIB - 28) < 1.0
    # ...and without them the recipe's own slice needs ~55 GiB, v5p-64 does not fit.
    whole, _ = recipe_memory.recipe_report("qwen2_5_7b", None, ["--config.model.attention_block=0"] + xla, 512)
    assert abs(whole.peak / memory.GIB - 55) < 1.0
    # The recipe as written (auto: splash on TPU) keeps no scores.
    fused, _ = recipe_memory.recipe_report("qwen2_5_7b", rollout_rows=512)
    assert abs(fused.train_peak / memory.GIB - 10) < 1.0 and abs(fused.rollout_peak / memory.GIB - 8) < 1.0
    _, report = recipe_memory.recipe_report("qwen2_5_7b", "v5p-64", ["--config.mesh.fsdp=8",
                                                              "--config.model.attention_block=0"] + xla, 512)
    assert "DOES NOT FIT" in report
    # The recipe's own sampling.max_rows_per_call=512 is what the estimator reads...
    chunked, _ = recipe_memory.recipe_report("qwen2_5_7b", overrides=xla)
    assert chunked.rollout_peak == estimate.rollout_peak
    # ...and without it, one call of all 3 x 64 x 8 learnability rows (-> 2048) needs ~49 GiB.
    unchunked, _ = recipe_memory.recipe_report("qwen2_5_7b", overrides=["--config.sampling.max_rows_per_call=0"] + xla)
    assert abs(unchunked.rollout_peak / memory.GIB - 49) < 1.0


def test_param_shards_match_real_sharded_arrays():
    cfg = get_preset("tiny")
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    from azr_jax.models import abstract_params

    shardings = logical_shardings(abstract_params(cfg), mesh)
    shapes = jax.tree.map(lambda x: x.value.shape, abstract_params(cfg),
                          is_leaf=lambda x: hasattr(x, "names"))
    real = sum(math.prod(s.shard_shape(shape)) for s, shape in
               zip(jax.tree.leaves(shardings), jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple))))
    assert memory.param_shard_elements(cfg, (2, 2, 2)) == real
    assert real < memory.param_count(cfg)  # something really is sharded


def test_kv_cache_term_matches_a_real_cache():
    cfg = get_preset("tiny").replace(dtype="bfloat16")
    cache = init_cache(cfg, batch=3, num_slots=40)
    real = sum(np.asarray(x).nbytes for x in jax.tree.leaves(cache) if x.ndim)  # not the index
    est = memory.estimate_memory(cfg, (1, 1, 1), train_rows=1, train_len=8, rollout_rows=3,
                                 prompt_len=8, cache_len=40)
    assert est.rollout_kv == real


def test_remat_changes_saved_activations():
    base = get_preset("tiny")
    kw = dict(train_rows=2, train_len=64, rollout_rows=1, prompt_len=8, cache_len=16)
    full = memory.estimate_memory(base.replace(remat="full"), (1, 1, 1), **kw)
    none = memory.estimate_memory(base.replace(remat="none"), (1, 1, 1), **kw)
    assert full.train_saved * 5 < none.train_saved
    halved = memory.estimate_memory(base.replace(remat="full"), (1, 1, 1), **{**kw, "train_rows": 1})
    assert halved.train_layer < full.train_layer


def test_memory_cli_prints_reports(capsys):
    assert recipe_memory.main(["qwen2_5_3b", "llama3_1_8b", "--rollout-rows", "512"]) == 0
    out = capsys.readouterr().out
    assert "3.09B parameters" in out and "8.03B parameters" in out and out.count("PEAK") == 2
    assert recipe_memory.main(["qwen2_5_3b", "--slice", "v9-8"]) == 2
