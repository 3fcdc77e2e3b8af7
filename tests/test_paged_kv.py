"""The paged KV cache (`kv_layout="paged"`) on a tiny random model: token for token (log-probs to
1e-5) equal to the dense path without shared prefixes, greedy and sampled, 1 and 8 samples per
prompt, heavy-tailed budgets, a pool so small that rows wait and are preempted, the 8-device
data mesh (a pool per shard), a Gemma-2-style model (sliding window, soft-caps); the page
allocator; the Pallas paged-attention kernels (TPU and GPU) in interpret mode against the XLA
gather path."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.models import get_preset, init_params
from azr_jax.models import paged_attention as pa
from azr_jax.models import cpu_paged
from azr_jax.models.paged_cache import NULL_PAGE
from azr_jax.sampling import PreparedParams, SamplingConfig, paged, sample
from azr_jax.sampling.page_pool import PageAllocator
from azr_jax.sampling.paged_host import Engine, Entry

NEW = 12
# prompt lengths 1..13 (pages of 4: full pages, partial ones, a single token)
PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], [3], [40, 41, 42, 43],
           [70, 71, 72, 73, 74, 75]]
# heavy-tailed budgets: most rows short, a few to the full NEW
BUDGETS = [NEW, 1, 2, 3, NEW]
DENSE = SamplingConfig(max_new_tokens=NEW, temperature=0.0, share_prefixes=False, page_size=4,
                       decode_chunk=3)


@pytest.fixture(scope="module")
def model():
    cfg = get_preset("tiny")
    params = init_params(cfg, jax.random.PRNGKey(0))
    return cfg, jax.tree.map(lambda x: x * 4.0 if x.ndim > 1 else x, params)  # no near-ties


def _budgets(n):
    return np.repeat(BUDGETS, n)


def _assert_rows_equal(got, ref, atol=1e-5):
    np.testing.assert_array_equal(got.lengths, ref.lengths)
    np.testing.assert_array_equal(got.tokens, ref.tokens)
    np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=atol)
    np.testing.assert_array_equal(got.prompt_index, ref.prompt_index)


@pytest.fixture(scope="module")
def greedy8(model):
    """8 greedy samples per prompt; the stop token is row 8's first token (a row that stops
    at once), with the dense path's output as the reference."""
    cfg, params = model
    base = DENSE.replace(num_samples=8)
    stop = int(sample(params, cfg, PROMPTS, 0, base).tokens[8, 0])
    sc = base.replace(stop_token_ids=(stop,))
    return sc, sample(params, cfg, PROMPTS, 0, sc, budgets=_budgets(8))


def test_greedy_8_samples_equal_dense_with_shared_prompt_pages(model, greedy8):
    cfg, params = model
    sc, ref = greedy8
    assert ref.lengths[8] == 1 and ref.lengths.max() == NEW  # a stop at once, a full row
    got = sample(params, cfg, PROMPTS, 0, sc.replace(kv_layout="paged", share_prefixes=True),
                 budgets=_budgets(8))
    _assert_rows_equal(got, ref)
    st = got.stats
    assert st["prefilled_prompts"] == len(PROMPTS)  # each distinct prompt once
    # prompt 1 (13 tokens) has 3 full pages, prompts 3 and 4 one each: rows 2..8 of a prompt
    # take them by reference
    assert st["shared_page_refs"] == 7 * (3 + 1 + 1)
    # all rows at once but prompt 1's (budget 1: done at token 0, never decoding)
    assert st["preemptions"] == 0 and st["peak_live_rows"] == 32
    assert st["attention"] == ("cpu_ffi" if cpu_paged.available() else "xla")  # in place
    unshared = sample(params, cfg, PROMPTS, 0, sc.replace(kv_layout="paged"), budgets=_budgets(8))
    _assert_rows_equal(unshared, ref)
    assert unshared.stats["prefilled_prompts"] == 40 and unshared.stats["shared_page_refs"] == 0
    assert unshared.stats["peak_pages_in_use"] > st["peak_pages_in_use"]


def test_sampled_1_sample_equals_dense_through_few_slots(model):
    cfg, params = model
    sc = DENSE.replace(temperature=1.0, top_k=20, decode_chunk=4)
    ref = sample(params, cfg, PROMPTS, 9, sc, budgets=BUDGETS)
    got = sample(params, cfg, PROMPTS, 9, sc.replace(kv_layout="paged", max_rows_per_call=2),
                 budgets=BUDGETS)
    _assert_rows_equal(got, ref)
    assert got.stats["slots"] == 2 and got.stats["peak_live_rows"] == 2
    # the GPU/TPU layout: stacked weights, one stacked pool, a fori_loop over layers
    stacked = sample(PreparedParams(params, None), cfg, PROMPTS, 9,
                     sc.replace(kv_layout="paged", max_rows_per_call=2), budgets=BUDGETS)
    _assert_rows_equal(stacked, ref)
    other = sample(params, cfg, PROMPTS, 10, sc.replace(kv_layout="paged"), budgets=BUDGETS)
    assert not np.array_equal(other.tokens, ref.tokens)  # the seed matters


def test_sampled_8_samples_in_a_tiny_pool_wait_and_preempt(model):
    """8 pages of 4 tokens (7 usable): the largest row alone needs 6 (6 + 11 tokens, + its
    prompt's partial page), so rows wait for pages and live rows are preempted; the tokens
    are the dense path's all the same."""
    cfg, params = model
    sc = DENSE.replace(temperature=1.0, num_samples=8, decode_chunk=4)
    ref = sample(params, cfg, PROMPTS, 3, sc, budgets=_budgets(8))
    got = sample(params, cfg, PROMPTS, 3, sc.replace(kv_layout="paged", share_prefixes=True,
                                                     kv_pages=8, max_rows_per_call=6),
                 budgets=_budgets(8))
    _assert_rows_equal(got, ref)
    st = got.stats
    assert st["preemptions"] > 0 and st["peak_pages_in_use"] <= 7 and st["pool_pages"] == 8
    assert st["prefilled_prompts"] > len(PROMPTS)  # dropped entries were prefilled again


def test_pool_too_small_for_one_row_is_a_user_error(model):
    cfg, params = model
    # the 6-token prompt + 11 new tokens fill 5 pages, + its partial prompt page, + NULL_PAGE
    sc = DENSE.replace(kv_layout="paged", kv_pages=6)
    with pytest.raises(UserError, match=r"kv_pages=6 is too small.*needs 6 pages.*>= 7"):
        sample(params, cfg, PROMPTS, 0, sc, budgets=BUDGETS)
    with pytest.raises(UserError, match="kv_layout"):
        SamplingConfig(kv_layout="pages")
    with pytest.raises(UserError, match="kv_pages"):
        SamplingConfig(kv_pages=-1)
    with pytest.raises(UserError, match="page_size"):
        SamplingConfig(page_size=0)


def test_data_parallel_mesh_equals_unsharded(model, greedy8):
    from azr_jax.models import abstract_params
    from azr_jax.sharding import MeshConfig, logical_shardings, make_mesh, shard_params

    cfg, params = model
    sc, ref = greedy8
    mesh = make_mesh(MeshConfig(data=8, fsdp=1, tensor=1))
    sharded = shard_params(params, logical_shardings(abstract_params(cfg), mesh))
    # 12 slots -> 16, split over data=8: 2 slots and 8 pages (7 usable) per shard
    got = sample(sharded, cfg, PROMPTS, 0,
                 sc.replace(kv_layout="paged", share_prefixes=True, max_rows_per_call=12,
                            kv_pages=8), mesh=mesh, budgets=_budgets(8))
    _assert_rows_equal(got, ref, atol=1e-4)
    st = got.stats
    assert st["slots"] == 16 and st["data_shards"] == 8 and st["pool_pages"] == 8
    assert st["peak_shard_pages"] <= 7 < st["peak_pages_in_use"]  # each shard its own pages


def test_gemma2_style_model_sliding_window_and_softcaps(model):
    """A sliding window of 4 on layer 0 (shorter than the rows), logit soft-caps, post-norms."""
    cfg = get_preset("tiny").replace(attention_windows=(4, 0), attn_logit_softcap=20.0,
                                     final_logit_softcap=30.0, post_norms=True, norm_offset=1.0,
                                     scale_embeddings=True, mlp_activation="gelu_tanh")
    params = init_params(cfg, jax.random.PRNGKey(1))
    params = jax.tree.map(lambda x: x * 4.0 if x.ndim > 1 else x, params)
    sc = DENSE.replace(num_samples=2)
    ref = sample(params, cfg, PROMPTS, 0, sc)
    got = sample(params, cfg, PROMPTS, 0, sc.replace(kv_layout="paged", share_prefixes=True))
    _assert_rows_equal(got, ref)
    assert pa.resolve_paged_impl(cfg, 16, "gpu") == "xla"  # kernels know no window


def test_page_allocator_counts_references():
    alloc = PageAllocator(5)
    a = alloc.alloc(3)
    assert NULL_PAGE not in a and alloc.free == 1 and alloc.alloc(2) is None and alloc.free == 1
    alloc.share(a[:2])  # a second holder of two pages
    alloc.release(a)
    assert alloc.free == 2 and alloc.in_use == 2
    alloc.release(a[:2])
    assert alloc.free == 4 and alloc.peak_in_use == 3
    with pytest.raises(AssertionError, match="released twice"):
        alloc.release(a[:1])


def test_a_row_that_fits_nowhere_drops_idle_entries():
    """Two shards of 3 usable pages, each held by another prompt's entry and no live row:
    the head rows are admitted once those entries are dropped, instead of waiting for pages
    that nothing would free (row 0 into shard 0 for prompt 1's entry, row 1 into shard 1)."""
    sc = SamplingConfig(max_new_tokens=5, page_size=4, decode_chunk=4)
    prompts = [[1] * 8, [2] * 8, [3] * 8]
    eng = Engine(prompts, np.arange(3), np.full(3, 5), sc, num_slots=2, shards=2, shard_pages=4,
                 plen=8)
    for src, d in ((1, 0), (2, 1)):
        eng.entries[(src, d)] = Entry(eng.allocs[d].alloc(2), None)
    taken, new = eng.plan_admissions()
    # (slot, row) taken, (prompt, shard) entries made
    assert taken == [(0, 0), (1, 1)] and list(new) == [(0, 0), (1, 1)]
    assert not eng.entries and list(eng.waiting) == [2]
    assert eng.allocs[0].free == eng.allocs[1].free == 0


def _paged_inputs(dtype, pages_per_row=4, page_size=16, n=4, k=2, h=16):
    ks = jax.random.split(jax.random.PRNGKey(0), 3)
    b, pool = 3, 16
    q = jax.random.normal(ks[0], (b, n, h)).astype(dtype)
    # bf16-exact keys and values: the TPU kernel reads them as bf16
    k_pages = jax.random.normal(ks[1], (k, pool, page_size, h)).astype(jnp.bfloat16).astype(dtype)
    v_pages = jax.random.normal(ks[2], (k, pool, page_size, h)).astype(jnp.bfloat16).astype(dtype)
    perm = np.random.RandomState(0).permutation(np.arange(1, pool))  # pages out of order
    table = jnp.asarray(perm[: b * pages_per_row].reshape(b, pages_per_row), jnp.int32)
    lengths = jnp.asarray([5, 17, pages_per_row * page_size], jnp.int32)  # partial, across, full
    return q, k_pages, v_pages, table, lengths


@pytest.mark.parametrize("impl", ["pallas_tpu", "pallas_gpu", "cpu_ffi"])
@pytest.mark.parametrize("softcap", [0.0, 5.0])
def test_kernels_in_interpret_mode_equal_the_gather_path(impl, softcap):
    """GQA (4 query heads over 2 KV heads), pages out of order, partial last pages (the CPU
    kernel natively; the Pallas ones in interpret mode)."""
    if impl == "cpu_ffi" and not cpu_paged.available():
        pytest.skip("no C++ compiler: the CPU kernel is not built")
    q, k_pages, v_pages, table, lengths = _paged_inputs(jnp.float32)
    want = pa.gather_attention(q, k_pages, v_pages, table, lengths, scale=0.25, softcap=softcap)
    kernel = functools.partial(pa.PAGED_IMPLS[impl], scale=0.25, softcap=softcap, interpret=True)
    got = jax.jit(kernel)(q, k_pages, v_pages, table, lengths)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    # only the first `lengths` slots count: changing a slot past them changes nothing
    far = k_pages.at[:, table[0, 1]].set(100.0)
    again = pa.PAGED_IMPLS[impl](q, far, v_pages, table, lengths, scale=0.25, softcap=softcap,
                                 interpret=True)
    np.testing.assert_allclose(np.asarray(again), np.asarray(got), atol=1e-6)


def test_gpu_kernel_decodes_the_model_in_interpret_mode(model, monkeypatch):
    """The whole engine with the GPU kernel (interpret mode on CPU) as its attention."""
    cfg, params = model
    monkeypatch.setattr(paged, "resolve_paged_impl", lambda cfg, page_size: "pallas_gpu")
    sc = DENSE.replace(page_size=16, max_new_tokens=6)
    ref = sample(params, cfg, PROMPTS[:3], 0, sc)
    got = sample(params, cfg, PROMPTS[:3], 0, sc.replace(kv_layout="paged"))
    _assert_rows_equal(got, ref)
    assert got.stats["attention"] == "pallas_gpu"


def test_cpu_gather_path_decodes_the_model(model, monkeypatch):
    """The whole engine on the XLA gather path (what a CPU without a C++ compiler runs)."""
    cfg, params = model
    monkeypatch.setattr(paged, "resolve_paged_impl", lambda cfg, page_size: "xla")
    sc = DENSE.replace(max_new_tokens=6, temperature=1.0, num_samples=2, max_rows_per_call=4)
    ref = sample(params, cfg, PROMPTS, 0, sc)
    got = sample(params, cfg, PROMPTS, 0, sc.replace(kv_layout="paged", share_prefixes=True))
    _assert_rows_equal(got, ref)
    assert got.stats["attention"] == "xla"


def test_kernel_choice_per_backend():
    cfg = get_preset("tiny")  # head_dim 16, f32
    assert pa.resolve_paged_impl(cfg, 16, "cpu") == ("cpu_ffi" if cpu_paged.available() else "xla")
    assert pa.resolve_paged_impl(cfg.replace(dtype="bfloat16"), 16, "cpu") == "xla"  # f32 kernel
    assert pa.resolve_paged_impl(cfg, 16, "gpu") == "pallas_gpu"
    assert pa.resolve_paged_impl(cfg, 8, "gpu") == "xla"  # pages below Triton's 16-row tiles
    assert pa.resolve_paged_impl(cfg, 16, "tpu") == "xla"  # f32: the kernel reads bf16
    bf16 = cfg.replace(dtype="bfloat16", head_dim=128)
    assert pa.resolve_paged_impl(bf16, 16, "tpu") == "pallas_tpu"
    assert paged.auto_kv_pages(4, 16, 100, 16) == 4 * (8 + 1) + 1


def test_chunk_tables_span_live_pages_only(model):
    """Rows of very different lengths (a 1-token prompt decoding 30 tokens, a 13-token one
    decoding 2) through 2 slots: each chunk's table is a power-of-two width that grows as a
    row crosses into new buckets mid-run and shrinks when long rows leave, below the full
    width (prompt + max_new), and the tokens are the dense path's."""
    cfg, params = model
    sc = DENSE.replace(max_new_tokens=40, temperature=1.0, num_samples=2)
    prompts, budgets = [PROMPTS[2], PROMPTS[1]], [30, 30, 2, 2]
    ref = sample(params, cfg, prompts, 4, sc, budgets=budgets)
    got = sample(params, cfg, prompts, 4, sc.replace(kv_layout="paged", max_rows_per_call=2),
                 budgets=budgets)
    _assert_rows_equal(got, ref)
    st = got.stats
    # 1 + 29 written tokens: 8 pages of 4 at most, against 14 for the full width
    assert st["peak_table_pages"] == 8 < st["table_pages_per_row"]
    assert st["table_widths"] >= 3  # buckets crossed mid-run


def _drive_host(eng: Engine, chunk_steps, check):
    """The host loop of `paged.generate` without a device: every row decodes `chunk_steps(c)`
    tokens of a chunk (no stops); `check(eng, table)` sees each chunk's inputs."""
    while eng.waiting or len(eng.live_slots()):
        eng.grow()
        taken, new = eng.plan_admissions()
        for src, _ in new:
            for r in eng.rows_of[src]:
                eng.first[r] = (1, 0.0)
        eng.entries.update(new)
        eng.seat(taken)
        eng.drop_unneeded_entries()
        if not len(eng.live_slots()):
            continue
        (_, _, count, _, budget, done), table, lanes = eng.chunk_inputs()
        check(eng, table, lanes)
        n = len(count)
        new_count = np.where(done, count, np.minimum(count + chunk_steps, budget))
        eng.record_chunk(np.ones((n, eng.K), np.int32), np.zeros((n, eng.K), np.float32),
                         new_count, done | (new_count >= budget), lanes)


def test_chunk_width_covers_every_write_of_the_chunk():
    """Host only: in every chunk, each live row's table entries at the positions it writes
    (pos .. pos + K - 1, within its budget) and reads are its own pages, never clamped to
    another one; widths are powers of two (or the full width) and change as rows come and
    go (prompts of 1 to 40 tokens, budgets 1 to 60, pages of 4, a pool that preempts)."""
    sc = SamplingConfig(max_new_tokens=60, page_size=4, decode_chunk=5)
    rng = np.random.default_rng(0)
    prompts = [[7] * int(n) for n in (1, 40, 3, 17, 8, 25)]
    source = np.repeat(np.arange(len(prompts)), 3)
    budgets = rng.integers(1, 61, len(source))
    eng = Engine(prompts, source, budgets, sc, num_slots=4, shards=1, shard_pages=40, plen=40)
    widths = []

    def check(eng, table_bp, lanes):
        width = table_bp.shape[1]
        widths.append(width)
        assert width == eng.table_width or width & (width - 1) == 0
        assert sorted(set(eng.live_slots()) & set(lanes)) == sorted(eng.live_slots())
        for i, s in enumerate(lanes):
            if eng.slot_row[s] < 0:
                assert (table_bp[i] == NULL_PAGE).all()  # an idle lane reads nothing
                continue
            r = eng.slot_row[s]
            pos = eng.plen_r[r] + eng.lengths[r] - 1
            last = min(pos + eng.K, eng.plen_r[r] + eng.budget[r] - 1)  # tokens in cache
            page_idx = np.minimum(np.arange(last) // eng.S, width - 1)  # paged_step's clamp
            np.testing.assert_array_equal(table_bp[i, page_idx],
                                          np.asarray(eng.slot_pages[s])[np.arange(last) // eng.S])

    _drive_host(eng, 5, check)
    assert eng.finished == len(source) and (eng.lengths == budgets).all()
    assert len(set(widths)) >= 3 and max(widths) <= eng.table_width
    peak = widths.index(max(widths))
    assert min(widths[:peak]) < max(widths) and min(widths[peak:]) < max(widths)  # up, down
    assert eng.stats["preemptions"] > 0


def test_lanes_are_the_live_slots_per_shard_padded_to_a_power_of_two():
    """Host only, 2 data shards of 8 slots: each chunk decodes every live slot once, each in
    its own shard's half of the batch, padded with idle slots of that shard to a power of two
    (at least 1 = 8 // 8); the lanes narrow in the long tail (one row of 60 tokens among
    rows of 1-6) and every row still gets its whole budget."""
    sc = SamplingConfig(max_new_tokens=60, page_size=4, decode_chunk=3)
    prompts = [[7] * int(n) for n in (2, 9, 5, 14)]
    source = np.repeat(np.arange(len(prompts)), 6)
    budgets = np.asarray([60] + [1, 2, 3, 4, 5, 6] * 3 + [2, 3, 1, 4, 5])
    eng = Engine(prompts, source, budgets, sc, num_slots=16, shards=2, shard_pages=64, plen=14)
    counts = []

    def check(eng, table_bp, lanes):
        n = len(lanes) // 2
        counts.append(n)
        assert n & (n - 1) == 0 and len(set(lanes)) == len(lanes)
        assert (lanes[:n] < 8).all() and (lanes[n:] >= 8).all()  # each shard its own slots
        assert set(eng.live_slots()) <= set(lanes)

    _drive_host(eng, 3, check)
    assert eng.finished == len(source) and (eng.lengths == budgets).all()
    assert max(counts) == 8 and counts[-1] == 1
    assert eng.stats["fewest_lanes"] == 2 and eng.stats["lane_counts"] == 3  # all shards: 16, 8, 2
