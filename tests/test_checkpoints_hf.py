"""HF directories: export -> transformers reload, sharded round trip, sharded placement, errors."""

import json
import os

import jax
import numpy as np
import pytest

from azr_jax.checkpoints import export_hf, import_hf, load_model
from azr_jax.errors import UserError
from azr_jax.models import forward
from azr_jax.tokenizer import tiny_tokenizer
from tests.hf_reference import hf_logits, make_reference

TOKENS = np.array([[5, 17, 300, 42, 9, 211, 3]], np.int32)


def _assert_params_equal(a, b):
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


@pytest.mark.parametrize("arch,tied", [("llama", False), ("qwen2", True)])
def test_export_reloads_in_transformers(tmp_path, arch, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = make_reference(arch, tied=tied, seed=1)
    files = export_hf(ref.params, ref.config, tiny_tokenizer(), str(tmp_path))
    assert files == ["model.safetensors"]
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    assert type(model).__name__ == type(ref.model).__name__
    ours = np.asarray(forward(ref.params, ref.config, TOKENS))
    np.testing.assert_allclose(hf_logits(model, TOKENS), ours, atol=1e-4, rtol=0)
    assert AutoTokenizer.from_pretrained(str(tmp_path)).encode("hi", add_special_tokens=False) == [107, 108]
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2 and generation["pad_token_id"] == 2
    # and back: our importer reads what we wrote
    loaded = import_hf(str(tmp_path), progress=False)
    assert loaded.config == ref.config and loaded.tokenizer.encode("hi") == [107, 108]
    _assert_params_equal(loaded.params, ref.params)


def test_sharded_export_import_round_trip_with_mesh(tmp_path):
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    ref = make_reference("llama", tied=False, seed=2)
    files = export_hf(ref.params, ref.config, None, str(tmp_path), max_shard_bytes=100_000)
    assert len(files) > 2 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(files)
    assert not os.path.exists(tmp_path / "model.safetensors")

    mesh = jax.make_mesh((2, 4), ("fsdp", "tensor"), axis_types=(AxisType.Auto,) * 2)
    spec_of = lambda path: P("fsdp") if path == ("embedding",) else P()
    loaded = load_model(str(tmp_path), shardings=lambda path: NamedSharding(mesh, spec_of(path)),
                        progress=False)
    assert loaded.tokenizer is None
    emb = loaded.params["embedding"]
    assert emb.sharding == NamedSharding(mesh, P("fsdp")) and len(emb.addressable_shards) == 8
    assert emb.addressable_shards[0].data.shape == (256, 64)
    _assert_params_equal(loaded.params, ref.params)
    # transformers reads the sharded directory too
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    np.testing.assert_allclose(hf_logits(model, TOKENS), ref.logits(TOKENS), atol=1e-5, rtol=0)  # eager vs sdpa


def test_bfloat16_export_and_import(tmp_path):
    ref = make_reference("qwen2", tied=False, seed=4)
    export_hf(ref.params, ref.config, None, str(tmp_path), dtype="bfloat16")
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    loaded = import_hf(str(tmp_path), progress=False)  # keeps f32 config, upcasts
    assert loaded.params["layers"]["attn"]["q_proj"].dtype == np.float32
    bf = load_model(str(tmp_path), dtype="bfloat16", progress=False)
    assert bf.config.param_dtype == "bfloat16" and bf.params["embedding"].dtype == jax.numpy.bfloat16
    np.testing.assert_allclose(np.asarray(loaded.params["embedding"]), np.asarray(ref.params["embedding"]),
                               rtol=1e-2, atol=1e-3)


def test_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="no config.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UserError, match="'gpt2'"):
        load_model(str(tmp_path))
    with pytest.raises(UserError, match="no local weights"):
        load_model("qwen2.5-7b")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="neither"):
        load_model(str(tmp_path / "weights.bin"))
    with pytest.raises(UserError, match="dtype"):
        load_model("tiny", dtype="int8")


def test_tiny_preset():
    a, b = load_model("tiny"), load_model("tiny")
    assert a.config.vocab_size == 512 and a.tokenizer.vocab_size <= a.config.vocab_size
    assert a.tokenizer.bos_id == a.config.bos_token_id and a.tokenizer.eos_ids == a.config.eos_token_ids
    _assert_params_equal(a.params, b.params)  # seed 0: deterministic
