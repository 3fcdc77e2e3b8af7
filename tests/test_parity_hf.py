"""Logits parity with transformers on tiny random Llama / Qwen2 models (f32, <= 1e-4)."""

import numpy as np
import pytest

from azr_jax.checkpoints import hf
from azr_jax.errors import UserError
from azr_jax.models import forward
from tests.hf_reference import make_reference

TOL = 1e-4


def _batch():
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 512, size=(3, 11)).astype(np.int32)
    valid = np.ones_like(tokens, dtype=bool)
    valid[1, :4] = False  # left padding
    valid[2, :9] = False
    tokens[~valid] = 0
    return tokens, valid


@pytest.mark.parametrize("arch,tied,rope_scaling", [
    ("llama", False, False), ("llama", True, True), ("qwen2", False, False), ("qwen2", True, False),
])
def test_logits_match_transformers(arch, tied, rope_scaling):
    ref = make_reference(arch, tied=tied, rope_scaling=rope_scaling)
    assert ref.config.tie_embeddings == tied and ref.config.qkv_bias == (arch == "qwen2")
    assert (ref.config.rope_scaling is not None) == rope_scaling
    tokens, valid = _batch()
    ours = np.asarray(forward(ref.params, ref.config, tokens, valid))
    theirs = ref.logits(tokens, valid)
    assert np.abs(theirs).max() > 1.0  # weights large enough that a layout bug would show
    np.testing.assert_allclose(ours[valid], theirs[valid], atol=TOL, rtol=0)
    # Blocked attention (4 query tokens at a time; 11 is padded to 12): the same logits.
    blocked = np.asarray(forward(ref.params, ref.config.replace(attention_block=4), tokens, valid))
    np.testing.assert_allclose(blocked[valid], theirs[valid], atol=TOL, rtol=0)


def test_state_dict_round_trip():
    ref = make_reference("qwen2", tied=False, seed=3)
    sd = hf.hf_state_dict_from_params(ref.params, ref.config)
    from tests.hf_reference import state_dict_numpy
    want = state_dict_numpy(ref.model)
    assert set(sd) == set(want)
    for name, value in want.items():
        np.testing.assert_array_equal(sd[name], value, err_msg=name)
    cfg2 = hf.config_from_hf(hf.hf_config_from_model_config(ref.config))
    assert cfg2 == ref.config


def test_config_errors():
    base = hf.hf_config_from_model_config(make_reference("llama").config)
    with pytest.raises(UserError, match="'mistral'"):
        hf.config_from_hf({**base, "model_type": "mistral"})
    with pytest.raises(UserError, match="yarn"):
        hf.config_from_hf({**base, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}})
    with pytest.raises(UserError, match="hidden_act"):
        hf.config_from_hf({**base, "hidden_act": "gelu"})


def test_state_dict_errors():
    ref = make_reference("llama")
    sd = hf.hf_state_dict_from_params(ref.params, ref.config)
    missing = dict(sd)
    del missing["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(UserError, match="up_proj"):
        hf.params_from_hf_state_dict(missing, ref.config)
    extra = {**sd, "model.layers.0.mlp.gate_proj.bias": np.ones(128, np.float32)}
    with pytest.raises(UserError, match="gate_proj.bias"):
        hf.params_from_hf_state_dict(extra, ref.config)
