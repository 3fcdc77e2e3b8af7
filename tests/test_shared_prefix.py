"""Shared prefixes (`SamplingConfig.share_prefixes`, `sampling.prefix`): prefilling each distinct
prompt once gives the same rows as one prefill per row (share_prefixes=False), token for
token and log-probs to 1e-5: static and continuous, greedy and sampled, 1 and 8 samples,
repeated prompts in the list, prompts of varied lengths, one device and the 8-device
data-parallel mesh; the prefill really runs on the distinct prompts only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.models import abstract_params, get_preset, init_cache, init_params
from azr_jax.sampling import SamplingConfig, prefix, sample
from azr_jax.sampling import sampler as sampler_lib
from azr_jax.sharding import MeshConfig, logical_shardings, make_mesh, shard_params

NEW = 8
# varied lengths (1 to 12 tokens); prompt 3 repeats prompt 0 and prompt 5 repeats prompt 2
PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], [3], [5, 6, 7],
           [40, 41, 42, 43], [3]]
DISTINCT = 4
GREEDY = SamplingConfig(max_new_tokens=NEW, temperature=0.0)
SAMPLED = SamplingConfig(max_new_tokens=NEW, temperature=1.0, top_k=20)


@pytest.fixture(scope="module")
def model():
    cfg = get_preset("tiny")
    params = init_params(cfg, jax.random.PRNGKey(0))
    params = jax.tree.map(lambda x: x * 4.0 if x.ndim > 1 else x, params)  # no near-ties
    return cfg, params


def _assert_same(got, ref):
    np.testing.assert_array_equal(got.prompt_index, ref.prompt_index)
    np.testing.assert_array_equal(got.lengths, ref.lengths)
    np.testing.assert_array_equal(got.tokens, ref.tokens)
    np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=1e-5, rtol=0)


def _shared_and_plain(monkeypatch, params, cfg, sc, seed, **kw):
    """(shared output, unshared output, the (prompts, batch) of each prompt batch the shared
    call packed (`prefix.pack`))."""
    packed = []
    real = prefix.pack
    with monkeypatch.context() as m:
        m.setattr(prefix, "pack", lambda p, b, *a: packed.append((len(p), b)) or real(p, b, *a))
        shared = sample(params, cfg, PROMPTS, seed, sc.replace(share_prefixes=True), **kw)
    plain = sample(params, cfg, PROMPTS, seed, sc.replace(share_prefixes=False), **kw)
    return shared, plain, packed


@pytest.mark.parametrize("sc,samples", [(GREEDY, 1), (SAMPLED, 1), (GREEDY, 8), (SAMPLED, 8)])
def test_static_batch_equals_one_prefill_per_row(model, monkeypatch, sc, samples):
    cfg, params = model
    shared, plain, packed = _shared_and_plain(monkeypatch, params, cfg,
                                              sc.replace(num_samples=samples), 3)
    _assert_same(shared, plain)
    rows = len(PROMPTS) * samples
    assert shared.tokens.shape == (rows, NEW)
    assert packed[-1] == (DISTINCT, 4)  # the prefill ran on the 4 distinct prompts
    if samples == 8 and not sc.greedy:
        assert len({tuple(r) for r in shared.tokens[:8].tolist()}) > 1  # samples differ


# (settings, samples, slots, the first fill's prefill batch: its distinct prompts, padded)
CONTINUOUS = [(GREEDY, 8, 12, (2, 2)), (SAMPLED, 8, 5, (1, 1)), (SAMPLED, 1, 3, (3, 3))]


@pytest.mark.parametrize("sc,samples,slots,first_fill", CONTINUOUS)
def test_continuous_batching_equals_one_prefill_per_row(model, monkeypatch, sc, samples, slots,
                                                        first_fill):
    cfg, params = model
    rows = len(PROMPTS) * samples
    budgets = (np.arange(rows) * 5) % NEW + 1  # rows stop at different steps: many refills
    shared, plain, packed = _shared_and_plain(
        monkeypatch, params, cfg, sc.replace(num_samples=samples, max_rows_per_call=slots), 5,
        budgets=budgets)
    _assert_same(shared, plain)
    np.testing.assert_array_equal(shared.lengths, budgets)  # no stop token: budgets bind
    assert packed[0] == first_fill  # (3, 3): three distinct prompts, one row each


@pytest.mark.parametrize("sc,slots,first_fill", [(SAMPLED, 0, (DISTINCT, 8)), (GREEDY, 16, (2, 8))])
def test_data_parallel_mesh_equals_one_prefill_per_row(model, monkeypatch, sc, slots, first_fill):
    """8 data-parallel devices: the distinct prompts (padded to 8) and the rows are both split
    over them, so the expand is a cross-device gather."""
    cfg, params = model
    mesh = make_mesh(MeshConfig(data=8, fsdp=1, tensor=1))
    sharded = shard_params(params, logical_shardings(abstract_params(cfg), mesh))
    shared, plain, packed = _shared_and_plain(
        monkeypatch, sharded, cfg, sc.replace(num_samples=8, max_rows_per_call=slots), 7,
        mesh=mesh)
    _assert_same(shared, plain)
    assert first_fill in packed


@pytest.mark.parametrize("slots", [0, 12])
def test_stacked_cache_layout_equals_one_prefill_per_row(model, monkeypatch, slots):
    """GPU/TPU keep the stacked [b, L, k, s, h] cache (CPU: per-layer buffers); forced here."""
    cfg, params = model
    monkeypatch.setattr(sampler_lib, "_per_layer_decode", lambda: False)
    shared, plain, packed = _shared_and_plain(
        monkeypatch, params, cfg, SAMPLED.replace(num_samples=8, max_rows_per_call=slots), 11)
    _assert_same(shared, plain)
    assert packed[-1 if slots == 0 else 0] == ((DISTINCT, 4) if slots == 0 else (2, 2))


def test_distinct_prompts_by_content():
    prompts = [[1, 2], (1, 2), np.array([3]), [1, 2, 3], [3]]
    unique, source = prefix.distinct_prompts(prompts)
    assert [list(u) for u in unique] == [[1, 2], [3], [1, 2, 3]]
    assert source.tolist() == [0, 0, 1, 2, 1]
    assert prefix.shared_batch(3, 16, 1) == 4 and prefix.shared_batch(3, 16, 8) == 8
    assert prefix.shared_batch(5, 8, 1) is None  # 8 rows for 5 prompts: nothing saved


def test_expand_copies_source_rows_at_the_offset():
    cfg = get_preset("tiny")
    small = init_cache(cfg, 2, 3, per_layer=True)
    mark = jnp.arange(2.0)[:, None, None, None] + 1.0  # row j's entries hold j + 1
    small = small.replace(keys=tuple(k + mark for k in small.keys),
                          valid_bs=jnp.ones((2, 3), bool), index=jnp.int32(3))
    dest = init_cache(cfg, 4, 8, per_layer=True)
    out = prefix.expand(small, jnp.array([1, 0, 1, 1]), dest, jnp.int32(2),
                        *prefix._cache_axes(cfg, True))
    k0 = np.asarray(out.keys[0][:, 0, :, 0])
    np.testing.assert_array_equal(k0[:, 2:5], np.array([[2.0], [1.0], [2.0], [2.0]]) * np.ones(3))
    assert (k0[:, :2] == 0).all() and (k0[:, 5:] == 0).all()
    np.testing.assert_array_equal(np.asarray(out.valid_bs[0]), [0, 0, 1, 1, 1, 0, 0, 0])
    assert int(out.index) == 5


def test_share_prefixes_must_be_a_bool():
    with pytest.raises(UserError, match="share_prefixes"):
        SamplingConfig(share_prefixes="yes")
