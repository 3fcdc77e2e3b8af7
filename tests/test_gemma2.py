"""Gemma 2 as a config: a tiny random `Gemma2ForCausalLM` (transformers, f32) against every path
of ours. Logits <= 1e-4 over a sequence longer than the sliding window with soft-caps that
bind; greedy tokens equal `generate` (static sampler, continuous batching, stacked decode);
decode logits equal the full forward; the log-prob VJP (final soft-cap inside) equals autodiff
of a plain reference; HF export round-trips; the fused kernels take the windows and the cap."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.checkpoints import hf, hf_dir
from azr_jax.errors import UserError
from azr_jax.models import attention_kernels as ak
from azr_jax.models import forward, get_preset, init_cache, prefill
from azr_jax.rl.logprobs import token_logprobs_and_entropy
from azr_jax.sampling import SamplingConfig, sample
from azr_jax.sampling import sampler as sampler_lib
from azr_jax.sampling.decode import decode_step, logits_from_hidden
from azr_jax.sampling.weight_layout import cpu_layout
from azr_jax.sharding import memory
from tests.hf_reference import hf_logits, make_reference, state_dict_numpy
from tests.test_sampling_hf import hf_greedy

TOL = 1e-4
WINDOW = 4  # tests/hf_reference.GEMMA2
PROMPTS = [[1, 40, 41, 42], [1, 100, 7, 300, 45, 11, 99, 250, 3], [1, 500], [1, 8, 9, 10, 11, 12]]
NEW = 12


@pytest.fixture(scope="module")
def ref():
    return make_reference("gemma2", tied=True, seed=3)


def batch(t=13):
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 512, size=(3, t)).astype(np.int32)
    valid = np.ones_like(tokens, dtype=bool)
    valid[1, :4] = False  # left padding
    valid[2, :9] = False
    tokens[~valid] = 0
    return tokens, valid


def test_config_reads_the_family(ref):
    c = ref.config
    assert c.architecture == "gemma2" and c.mlp_activation == "gelu_tanh" and c.tie_embeddings
    assert c.attention_windows == (WINDOW, 0, WINDOW, 0) and c.sliding_windows == (WINDOW,)
    assert (c.attn_logit_softcap, c.final_logit_softcap, c.query_pre_attn_scalar) == (4.0, 6.0, 20.0)
    assert c.norm_offset == 1.0 and c.post_norms and c.scale_embeddings
    assert c.head_dim * c.num_heads != c.hidden_size
    hf_sizes = {k: v.size for k, v in state_dict_numpy(ref.model).items()}
    assert c.num_params() == sum(hf_sizes.values()) - hf_sizes.get("lm_head.weight", 0)  # tied


def test_logits_match_transformers(ref):
    tokens, valid = batch()
    theirs = ref.logits(tokens, valid)
    ours = np.asarray(forward(ref.params, ref.config, tokens, valid))
    diff = float(np.abs(ours - theirs)[valid].max())
    print(f"gemma2 max |logit diff| {diff:.2e}, max |logit| {np.abs(theirs).max():.2f}")
    assert diff <= TOL
    # Every Gemma-specific field matters here: dropping one moves the logits far.
    for change in (dict(attention_windows=()), dict(attn_logit_softcap=0.0),
                   dict(final_logit_softcap=0.0)):
        other = np.asarray(forward(ref.params, ref.config.replace(**change), tokens, valid))
        assert np.abs(other - theirs)[valid].max() > 0.1, change
    blocked = np.asarray(forward(ref.params, ref.config.replace(attention_block=4), tokens, valid))
    np.testing.assert_allclose(blocked[valid], theirs[valid], atol=TOL, rtol=0)


def test_greedy_equals_transformers_generate(ref, monkeypatch):
    sc = SamplingConfig(max_new_tokens=NEW, temperature=0.0)
    want = [hf_greedy(ref.model, p, NEW, eos=None) for p in PROMPTS]
    static = sample(ref.params, ref.config, PROMPTS, 0, sc)
    slots = sample(ref.params, ref.config, PROMPTS, 0, sc.replace(max_rows_per_call=2))
    monkeypatch.setattr(sampler_lib, "_per_layer_decode", lambda: False)  # fori_loop over layers
    stacked = sample(ref.params, ref.config, PROMPTS, 0, sc)
    for i in range(len(PROMPTS)):
        assert static.row_tokens(i) == want[i], i
        assert slots.row_tokens(i) == want[i], i
        assert stacked.row_tokens(i) == want[i], i


@pytest.mark.parametrize("per_layer", [True, False])
def test_decode_logits_equal_full_forward(ref, per_layer):
    """Prefill 3 tokens, then decode 9 more one at a time (past the window): each step's
    logits equal the full forward's at that position, in both cache layouts."""
    cfg, params = ref.config, ref.params
    tokens, valid = batch()
    tokens, valid = tokens[:2], valid[:2]  # a full row and a left-padded one
    full = np.asarray(forward(params, cfg, tokens, valid))
    p = 3 + 4  # row 1 has 4 padding tokens: both rows prefill 3 real tokens
    cache = init_cache(cfg, 2, tokens.shape[1], per_layer=per_layer)
    h_btd, cache = prefill(params, cfg, tokens[:, :p], valid[:, :p], cache)
    decode_params = dict(params, **cpu_layout(params, cfg)) if per_layer else params
    step = jax.jit(lambda prm, tok, pos, c: decode_step(prm, cfg, tok, pos, c))
    pos = valid[:, :p].sum(-1).astype(np.int32)
    got = [np.asarray(logits_from_hidden(params, cfg, h_btd[:, -1]))]
    for t in range(p, tokens.shape[1] - 1):
        h_bd, cache = step(decode_params, jnp.asarray(tokens[:, t]), jnp.asarray(pos), cache)
        got.append(np.asarray(logits_from_hidden(decode_params, cfg, h_bd)))
        pos = pos + 1
    np.testing.assert_allclose(np.stack(got, 1), full[:, p - 1:-1], atol=TOL, rtol=0)


def test_logprob_vjp_equals_autodiff_of_a_plain_reference(ref):
    cfg, params = ref.config, ref.params
    tokens, valid = batch()
    keep = valid & np.concatenate([np.zeros((3, 1), bool), valid[:, :-1]], axis=1)
    g_lp = jax.random.normal(jax.random.PRNGKey(0), tokens.shape) * keep
    g_ent = jax.random.normal(jax.random.PRNGKey(1), tokens.shape) * keep

    def plain(p):  # whole-vocab log-softmax of the capped logits, autodiff
        logp = jax.nn.log_softmax(forward(p, cfg, tokens, valid), axis=-1)
        lp = jnp.take_along_axis(logp[:, :-1], tokens[:, 1:, None], axis=-1)[..., 0]
        ent = -(jnp.exp(logp) * logp).sum(-1)[:, :-1]
        return (lp * g_lp[:, 1:]).sum() + (ent * g_ent[:, 1:]).sum()

    def ours(p):
        lp, ent = token_logprobs_and_entropy(p, cfg, tokens, valid, chunk=4)
        return (lp * g_lp).sum() + (ent * g_ent).sum()

    np.testing.assert_allclose(float(jax.jit(ours)(params)), float(plain(params)), rtol=1e-5)
    g_ours, g_ref = jax.jit(jax.grad(ours))(params), jax.grad(plain)(params)
    for path, a in jax.tree_util.tree_leaves_with_path(g_ours):
        b = g_ref
        for key in path:
            b = b[key.key]
        scale = float(jnp.abs(b).max())
        assert scale > 1e-4, path
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4 * scale, err_msg=str(path))


def test_export_round_trips_through_transformers(ref, tmp_path):
    sd = hf.hf_state_dict_from_params(ref.params, ref.config)
    want = state_dict_numpy(ref.model)
    assert set(sd) == set(want) - {"lm_head.weight"}  # tied: HF's state dict repeats it
    for name, value in sd.items():
        np.testing.assert_array_equal(value, want[name], err_msg=name)
    assert hf.config_from_hf(hf.hf_config_from_model_config(ref.config)) == ref.config
    hf_dir.export_hf(ref.params, ref.config, None, str(tmp_path))
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype="float32").eval()
    assert type(model).__name__ == "Gemma2ForCausalLM"
    tokens, valid = batch()
    np.testing.assert_allclose(hf_logits(model, tokens, valid)[valid],
                               ref.logits(tokens, valid)[valid], atol=1e-5, rtol=0)
    loaded = hf_dir.import_hf(str(tmp_path), progress=False)
    assert loaded.config == ref.config
    jax.tree.map(np.testing.assert_array_equal, loaded.params, ref.params)


def test_config_json_without_layer_types_alternates(ref):
    """Published Gemma 2 config.json files predate `layer_types`: even layers are local."""
    cfg_json = hf.hf_config_from_model_config(ref.config)
    del cfg_json["layer_types"]
    assert hf.config_from_hf(cfg_json).attention_windows == (WINDOW, 0, WINDOW, 0)
    json.dumps(cfg_json)  # plain JSON


def test_families_cannot_claim_what_they_lack(ref):
    llama = get_preset("tiny")
    with pytest.raises(UserError, match="final_logit_softcap"):
        hf.hf_config_from_model_config(llama.replace(final_logit_softcap=30.0))
    with pytest.raises(UserError, match="attention_windows"):
        hf.hf_config_from_model_config(llama.replace(attention_windows=(4, 0)))
    with pytest.raises(UserError, match="attention_windows"):  # one window size in HF Gemma 2
        hf.hf_config_from_model_config(ref.config.replace(attention_windows=(4, 0, 8, 0)))
    with pytest.raises(ValueError, match="soft-cap"):
        ak.resolve_impl("cudnn", softcap=50.0)
    assert ak.resolve_impl("auto", "gpu", softcap=50.0) == "xla"
    assert ak.resolve_impl("auto", "tpu", softcap=50.0) == "splash"
    with pytest.raises(ValueError, match="attention_windows"):
        llama.replace(attention_windows=(4,))


@pytest.fixture
def cudnn_as_xla(monkeypatch):
    monkeypatch.setattr(ak, "CUDNN_IMPLEMENTATION", "xla")


@pytest.mark.parametrize("impl", ["splash", "cudnn"])
def test_fused_kernels_take_windows_and_softcap(ref, cudnn_as_xla, impl):
    """splash (Pallas interpret mode) with its local mask and soft-cap, cuDNN's wrapper with
    its local window (cuDNN has no soft-cap: that case runs the model without one), both
    through `lax.switch` over the layer kinds: logits and gradients equal the XLA core."""
    cfg = ref.config if impl == "splash" else ref.config.replace(attn_logit_softcap=0.0)
    tokens, valid = batch(t=20)
    keep = valid[:, 1:] & valid[:, :-1]

    def lp_and_grad(c):
        f = lambda p: token_logprobs_and_entropy(p, c, tokens, valid)[0]  # noqa: E731
        return jax.jit(f)(ref.params), jax.jit(jax.grad(lambda p: f(p).sum()))(ref.params)

    lp_x, g_x = lp_and_grad(cfg)
    lp_f, g_f = lp_and_grad(cfg.replace(attention_impl=impl))
    np.testing.assert_allclose(np.asarray(lp_f)[:, 1:][keep], np.asarray(lp_x)[:, 1:][keep], atol=TOL)
    for a, b in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4 * float(jnp.abs(b).max()))


def test_memory_estimate_reads_the_family_fields():
    """gemma2-2b on a GPU: cuDNN cannot soft-cap, so "auto" runs XLA and the estimate counts
    the [t, t] scores (and the cap's tanh); without the cap cuDNN keeps none. Post-norms and
    the final cap add their activations."""
    cfg = get_preset("gemma2-2b").replace(dtype="bfloat16", remat="full", attention_impl="auto")
    est = lambda c: memory.estimate_memory(c, (1, 1, 1), train_rows=1, train_len=4096,  # noqa: E731
                                           rollout_rows=8, prompt_len=1024, cache_len=2048,
                                           backend="gpu")
    capped, plain = est(cfg), est(cfg.replace(attn_logit_softcap=0.0))
    scores = 8 * 4096 * 4096 * (4 + 2 + 4 + 4)  # heads x t x t: scores, probs, grads, tanh'
    assert capped.train_layer - plain.train_layer == scores - 8 * 4096 * 8  # less cuDNN's stats
    assert est(cfg.replace(post_norms=False)).train_layer < capped.train_layer
    assert est(cfg.replace(final_logit_softcap=0.0)).train_logits < capped.train_logits
    assert capped.num_params == cfg.num_params()
