"""Continuous batching (decode slots with refill) on a tiny random model: row by row equal to
the static sampler (greedy and sampled), whatever the slot count; per-row budgets; rows that
stop at once or never; cache compaction; a data=2 mesh; the layout-agnostic slot ops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.models import get_preset, init_params
from azr_jax.sampling import SamplingConfig, continuous, sample, slots

NEW = 10
# mixed prompt lengths (1 to 12 tokens)
PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], [3], [40, 41, 42, 43],
           [70, 71], [100, 101, 102, 103, 104, 105], [8]]
# per-prompt budgets: 1 (stops at once), the full NEW (never stops early), and between
BUDGETS = [NEW, 1, NEW, 3, NEW, 7, 2]
ROW_BUDGETS = np.repeat(BUDGETS, 2)  # two samples per prompt: 14 rows


@pytest.fixture(scope="module")
def model():
    cfg = get_preset("tiny")
    params = init_params(cfg, jax.random.PRNGKey(0))
    params = jax.tree.map(lambda x: x * 4.0 if x.ndim > 1 else x, params)  # no near-ties
    return cfg, params


@pytest.fixture(scope="module")
def greedy(model):
    """Greedy settings whose stop token is row 2's first token (a row that stops at once
    by its stop token), with the static sampler's output as the reference."""
    cfg, params = model
    base = SamplingConfig(max_new_tokens=NEW, temperature=0.0, decode_chunk=3, num_samples=2)
    first = int(sample(params, cfg, PROMPTS, 0, base).tokens[4, 0])
    sc = base.replace(stop_token_ids=(first,))
    return sc, sample(params, cfg, PROMPTS, 0, sc, budgets=ROW_BUDGETS)


def _assert_rows_equal(got, ref, atol=1e-5):
    np.testing.assert_array_equal(got.lengths, ref.lengths)
    np.testing.assert_array_equal(got.tokens, ref.tokens)
    np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=atol)
    np.testing.assert_array_equal(got.prompt_index, ref.prompt_index)


def test_greedy_rows_equal_the_static_sampler(model, greedy, monkeypatch):
    cfg, params = model
    sc, ref = greedy
    assert ref.lengths[2] == 1 and ref.lengths[4] == 1 and ref.lengths[0] == NEW  # the cases
    assert (ref.lengths <= ROW_BUDGETS).all() and ref.lengths[6] == 3  # budgets hold
    compactions = []
    real = continuous._compact
    monkeypatch.setattr(continuous, "_compact",
                        lambda *a, **k: compactions.append(1) or real(*a, **k))
    got = sample(params, cfg, PROMPTS, 0, sc.replace(max_rows_per_call=2), budgets=ROW_BUDGETS)
    _assert_rows_equal(got, ref)
    assert compactions  # the run outlived the cache: live rows' entries were moved


def test_sampled_rows_reproduce_whatever_the_slot_count(model):
    cfg, params = model
    sc = SamplingConfig(max_new_tokens=NEW, temperature=1.0, top_k=20, num_samples=2,
                        decode_chunk=4)
    budgets = BUDGETS + BUDGETS[::-1]
    ref = sample(params, cfg, PROMPTS, 9, sc, budgets=budgets)  # static, 14 rows at once
    for n in (3, 5):
        got = sample(params, cfg, PROMPTS, 9, sc.replace(max_rows_per_call=n), budgets=budgets)
        _assert_rows_equal(got, ref)
    other = sample(params, cfg, PROMPTS, 10, sc.replace(max_rows_per_call=3), budgets=budgets)
    assert not np.array_equal(other.tokens, ref.tokens)  # the seed matters


def test_data_parallel_mesh_equals_unsharded(model, greedy):
    from azr_jax.models import abstract_params
    from azr_jax.sharding import MeshConfig, logical_shardings, make_mesh, shard_params

    cfg, params = model
    sc, ref = greedy
    mesh = make_mesh(MeshConfig(data=2, fsdp=1, tensor=1), devices=jax.devices()[:2])
    sharded = shard_params(params, logical_shardings(abstract_params(cfg), mesh))
    got = sample(sharded, cfg, PROMPTS, 0, sc.replace(max_rows_per_call=3), mesh=mesh,
                 budgets=ROW_BUDGETS)  # 3 slots -> 4, split over data=2
    _assert_rows_equal(got, ref, atol=1e-4)


def test_budget_errors(model):
    cfg, params = model
    sc = SamplingConfig(max_new_tokens=4, temperature=0.0)
    with pytest.raises(UserError, match="one per row"):
        sample(params, cfg, [[1], [2]], 0, sc, budgets=[2])
    with pytest.raises(UserError, match=r"\[1, max_new_tokens=4\]"):
        sample(params, cfg, [[1], [2]], 0, sc, budgets=[2, 5])
    with pytest.raises(UserError, match="max_rows_per_call"):
        SamplingConfig(max_rows_per_call=-1)


def test_slot_ops_find_axes_in_any_layout():
    """insert/compact move the right axis of each leaf, for leaves whose batch and slot axes
    sit anywhere, and update a scalar write index."""
    def make(batch, num_slots):
        return {"a": jnp.zeros((3, batch, num_slots)), "b": (jnp.zeros((num_slots, 2, batch)),),
                "valid": jnp.zeros((batch, num_slots), bool), "index": jnp.int32(0)}

    batch_axes = slots.leaf_axes(lambda b: make(b, 6), 4)
    slot_axes = slots.leaf_axes(lambda s: make(4, s), 6)
    assert batch_axes == {"a": 1, "b": (2,), "valid": 0, "index": None}
    assert slot_axes == {"a": 2, "b": (0,), "valid": 1, "index": None}
    dest = jax.tree.map(lambda x: jnp.zeros_like(x), make(4, 6))
    new = {"a": jnp.ones((3, 2, 6)) * jnp.array([1.0, 2.0])[None, :, None],
           "b": (jnp.ones((6, 2, 2)) * jnp.array([1.0, 2.0]),), "valid": jnp.ones((2, 6), bool),
           "index": jnp.int32(5)}
    out = slots.insert(dest, new, jnp.array([3, 4]), batch_axes)  # slot 4: dropped padding
    np.testing.assert_array_equal(out["a"][0, :, 0], [0, 0, 0, 1])
    np.testing.assert_array_equal(out["b"][0][0, 0], [0, 0, 0, 1])
    np.testing.assert_array_equal(out["valid"][:, 0], [False, False, False, True])
    assert int(out["index"]) == 5
    x = {"a": jnp.arange(6.0)[None, None, :] * jnp.ones((3, 4, 1)),
         "b": (jnp.arange(6.0)[:, None, None] * jnp.ones((1, 2, 4)),),
         "valid": jnp.arange(6)[None, :] >= 2 * jnp.ones((4, 1), int), "index": jnp.int32(6)}
    moved = slots.compact(x, jnp.int32(2), batch_axes, slot_axes)
    np.testing.assert_array_equal(moved["a"][0, 0], [2, 3, 4, 5, 0, 1])
    np.testing.assert_array_equal(moved["b"][0][:, 0, 0], [2, 3, 4, 5, 0, 1])
    np.testing.assert_array_equal(moved["valid"][0], [True] * 4 + [False] * 2)
    assert int(moved["index"]) == 4
