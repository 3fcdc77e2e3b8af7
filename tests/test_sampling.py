"""The jitted sampler on a tiny random model: cache vs full forward, padding, log-probs,
filters, seeds, stop tokens, compile reuse, sharding on 8 fake devices, errors."""

import jax
import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.models import forward, get_preset, init_params
from azr_jax.sampling import SamplingConfig, pack_prompts, sample
from azr_jax.sampling import processors
from azr_jax.sampling import sampler as sampler_lib

NEW = 8
PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [3], [40, 41, 42, 43]]


@pytest.fixture(scope="module")
def model():
    cfg = get_preset("tiny")
    params = init_params(cfg, jax.random.PRNGKey(0))
    # Spread the weights so logits are far from uniform (greedy choices are not near-ties).
    params = jax.tree.map(lambda x: x * 4.0 if x.ndim > 1 else x, params)
    return cfg, params


FULL = 32  # every reference forward pass is left-padded to this length: one compile


@jax.jit
def _full_forward(params, tokens_bt, valid_bt):
    return forward(params, get_preset("tiny"), tokens_bt, valid_bt)


def full_logits(params, seq):
    """[len(seq), V] logits of one uncached forward pass over seq (left-padded to FULL)."""
    tokens = np.zeros((1, FULL), np.int32)
    tokens[0, FULL - len(seq):] = seq
    valid = np.zeros((1, FULL), bool)
    valid[0, FULL - len(seq):] = True
    return np.asarray(_full_forward(params, tokens, valid)[0, FULL - len(seq):])


def greedy_by_full_forward(params, cfg, prompt, steps):
    seq = list(prompt)
    for _ in range(steps):
        seq.append(int(np.argmax(full_logits(params, seq)[-1])))
    return seq[len(prompt):]


def test_greedy_cached_decode_matches_full_forward_and_logprobs(model):
    cfg, params = model
    out = sample(params, cfg, PROMPTS, 0, SamplingConfig(max_new_tokens=NEW, temperature=0.0))
    assert out.tokens.shape == (len(PROMPTS), NEW) and out.tokens.dtype == np.int32
    assert out.lengths.tolist() == [NEW] * len(PROMPTS)
    assert out.prompt_index.tolist() == list(range(len(PROMPTS)))
    for i, prompt in enumerate(PROMPTS):
        want = greedy_by_full_forward(params, cfg, prompt, NEW)
        assert out.tokens[i].tolist() == want
        # log-probs: log_softmax of one full forward over prompt + generated tokens
        seq = prompt + want
        logp = jax.nn.log_softmax(full_logits(params, seq), axis=-1)
        ref = [float(logp[len(prompt) - 1 + j, seq[len(prompt) + j]]) for j in range(NEW)]
        np.testing.assert_allclose(out.logprobs[i], ref, atol=1e-4, rtol=0)


def test_stacked_decode_layout_equals_per_layer(model, monkeypatch):
    """GPU/TPU decode from stacked weights and cache in a fori_loop over layers; CPU from
    per-layer buffers. Forcing the stacked layout here tests the accelerator path on CPU."""
    cfg, params = model
    for sc in (SamplingConfig(max_new_tokens=NEW, temperature=0.0),
               SamplingConfig(max_new_tokens=NEW, temperature=1.0, top_k=20, num_samples=2)):
        per_layer = sample(params, cfg, PROMPTS, 3, sc)
        with monkeypatch.context() as m:
            m.setattr(sampler_lib, "_per_layer_decode", lambda: False)
            stacked = sample(params, cfg, PROMPTS, 3, sc)
        np.testing.assert_array_equal(stacked.tokens, per_layer.tokens)
        np.testing.assert_allclose(stacked.logprobs, per_layer.logprobs, atol=1e-5)
        prepared = sample(sampler_lib.prepare_params(params, cfg), cfg, PROMPTS, 3, sc)
        np.testing.assert_array_equal(prepared.tokens, per_layer.tokens)
        np.testing.assert_array_equal(prepared.logprobs, per_layer.logprobs)


def test_first_argmax_and_draw_match_jax():
    x = np.array([[1.0, 3.0, 3.0, -2.0], [0.5, np.nan, 9.0, np.nan], [-1.0, -1.0, -1.0, -1.0]],
                 np.float32)
    np.testing.assert_array_equal(processors.first_argmax(x), jax.numpy.argmax(x, axis=-1))
    logits = jax.random.normal(jax.random.PRNGKey(1), (64, 1000))
    keys = jax.random.split(jax.random.PRNGKey(2), 64)
    np.testing.assert_array_equal(jax.vmap(processors._draw)(keys, logits),
                                  jax.vmap(jax.random.categorical)(keys, logits))


def test_top_p_keep_equals_the_sorted_rule():
    """The sort-free nucleus keeps exactly the tokens whose more likely tokens (in sorted
    order) hold < top_p of the mass, on rows from flat to peaked, and with a masked tail."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 500)) * np.array([0.1, 1, 3, 10, 30, 1])[:, None]
    logits[5, 100:] = -1e30
    logits = logits.astype(np.float32)
    probs = np.exp(logits - logits.max(-1, keepdims=True), dtype=np.float64)
    probs /= probs.sum(-1, keepdims=True)
    order = np.argsort(-logits, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    before = np.zeros_like(probs)
    np.put_along_axis(before, order, np.cumsum(sorted_p, -1) - sorted_p, axis=-1)
    for top_p in (1e-6, 0.3, 0.9, 0.999):
        keep = np.asarray(processors.top_p_keep(jax.numpy.asarray(logits), top_p))
        clear = np.abs(before - top_p) > 1e-5  # f32 sums may round either way right at top_p
        np.testing.assert_array_equal(keep[clear], (before < top_p)[clear])
        assert keep.sum(-1).min() >= 1 and (keep.sum() < keep.size or top_p > 0.99)


def test_left_padded_batch_equals_each_prompt_alone(model):
    cfg, params = model
    sc = SamplingConfig(max_new_tokens=NEW, temperature=1.0)
    batch = sample(params, cfg, PROMPTS, 7, sc)
    for i, prompt in enumerate(PROMPTS):
        # row i alone: same row index -> same key stream, so sampled tokens must agree too
        alone = sample(params, cfg, PROMPTS[:i] + [prompt], 7, sc)
        assert alone.tokens[i].tolist() == batch.tokens[i].tolist()
        np.testing.assert_allclose(alone.logprobs[i], batch.logprobs[i], atol=1e-5)
    greedy = SamplingConfig(max_new_tokens=NEW, temperature=0.0)
    batch = sample(params, cfg, PROMPTS, 0, greedy)
    for i, prompt in enumerate(PROMPTS):
        assert sample(params, cfg, [prompt], 0, greedy).tokens[0].tolist() == batch.tokens[i].tolist()


def test_top_k_1_and_tiny_top_p_equal_greedy(model):
    cfg, params = model
    greedy = sample(params, cfg, PROMPTS, 0, SamplingConfig(max_new_tokens=NEW, temperature=0.0))
    top1 = sample(params, cfg, PROMPTS, 3, SamplingConfig(max_new_tokens=NEW, temperature=1.5, top_k=1))
    np.testing.assert_array_equal(top1.tokens, greedy.tokens)
    np.testing.assert_allclose(top1.logprobs, greedy.logprobs, atol=1e-5)
    tiny_p = sample(params, cfg, PROMPTS, 3, SamplingConfig(max_new_tokens=NEW, temperature=1.0, top_p=1e-6))
    np.testing.assert_array_equal(tiny_p.tokens, greedy.tokens)


def test_top_k_restricts_to_k_best_and_seeds_reproduce(model):
    cfg, params = model
    sc = SamplingConfig(max_new_tokens=NEW, temperature=2.0, top_k=3, num_samples=4)
    a = sample(params, cfg, PROMPTS[:2], 11, sc)
    b = sample(params, cfg, PROMPTS[:2], 11, sc)
    c = sample(params, cfg, PROMPTS[:2], 12, sc)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.logprobs, b.logprobs)
    assert not np.array_equal(a.tokens, c.tokens)
    assert a.prompt_index.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert len({tuple(r) for r in a.tokens.tolist()}) > 1  # samples of one prompt differ
    # every sampled token is among the 3 most likely at its step
    for r in range(a.tokens.shape[0]):
        seq = PROMPTS[a.prompt_index[r]] + a.tokens[r].tolist()
        logits = full_logits(params, seq)
        p = len(PROMPTS[a.prompt_index[r]])
        for j in range(NEW):
            top3 = np.argsort(-logits[p - 1 + j])[:3]
            assert a.tokens[r, j] in top3


def test_stop_tokens_stop_and_pad(model):
    cfg, params = model
    greedy = sample(params, cfg, PROMPTS, 0, SamplingConfig(max_new_tokens=NEW, temperature=0.0))
    stop = int(greedy.tokens[0, 2])  # row 0 emits this at step 2 (or earlier)
    first = greedy.tokens[0].tolist().index(stop)
    out = sample(params, cfg, PROMPTS, 0, SamplingConfig(max_new_tokens=NEW, temperature=0.0,
                                                         stop_token_ids=(stop,), pad_token_id=0))
    assert out.lengths[0] == first + 1
    assert out.row_tokens(0) == greedy.tokens[0, :first + 1].tolist()
    assert (out.tokens[0, first + 1:] == 0).all() and (out.logprobs[0, first + 1:] == 0).all()
    for r in range(len(PROMPTS)):  # other rows run until their own stop (or the end)
        row = greedy.tokens[r].tolist()
        want = row.index(stop) + 1 if stop in row else NEW
        assert out.lengths[r] == want and out.row_tokens(r) == row[:want]


def test_buckets_reuse_one_compile(model):
    cfg, params = model
    sc = SamplingConfig(max_new_tokens=NEW, temperature=0.0, prompt_bucket="pow2")
    tokens_bt, valid_bt, active_b, index_r = pack_prompts(PROMPTS[:3], sc, batch_multiple=1)
    assert tokens_bt.shape == (4, 16) and active_b.tolist() == [True, True, True, False]
    assert valid_bt[2].sum() == 1 and valid_bt[2, -1] and index_r.tolist() == [0, 1, 2]
    sample(params, cfg, [[1, 2, 3]], 0, sc)
    before = sampler_lib._generate._cache_size()
    sample(params, cfg, [[4, 5, 6, 7, 8]], 1, sc)  # same bucket: 16 tokens, batch 1
    sample(params, cfg, [list(range(3, 14))], 2, sc)
    assert sampler_lib._generate._cache_size() == before


def test_sharded_2x2x2_equals_unsharded(model):
    from azr_jax.sharding import MeshConfig, logical_shardings, make_mesh, shard_params
    from azr_jax.models import abstract_params

    cfg, params = model
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    sharded = shard_params(params, logical_shardings(abstract_params(cfg), mesh))
    assert not sharded["layers"]["mlp"]["up_proj"].sharding.is_fully_replicated
    for sc in (SamplingConfig(max_new_tokens=NEW, temperature=0.0),
               SamplingConfig(max_new_tokens=NEW, temperature=1.0, top_k=20, num_samples=2)):
        ref = sample(params, cfg, PROMPTS, 5, sc)
        got = sample(sharded, cfg, PROMPTS, 5, sc, mesh=mesh)
        np.testing.assert_array_equal(got.tokens, ref.tokens)
        np.testing.assert_array_equal(got.lengths, ref.lengths)
        np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=1e-4)


def test_user_errors(model):
    cfg, params = model
    sc = SamplingConfig(max_new_tokens=4, temperature=0.0)
    with pytest.raises(UserError, match="longer than the model's context"):
        sample(params, cfg, [[1] * (cfg.max_seq_len + 1)], 0, sc)
    with pytest.raises(UserError, match="max_new_tokens"):
        sample(params, cfg, [[1] * (cfg.max_seq_len - 2)], 0, sc)
    with pytest.raises(UserError, match="prompt 1 is empty"):
        sample(params, cfg, [[1], []], 0, sc)
    with pytest.raises(UserError, match="temperature"):
        SamplingConfig(temperature=-1.0)
    with pytest.raises(UserError, match="prompt_bucket"):
        SamplingConfig(prompt_bucket="fives")
