"""GGUF import: tiny files written with gguf.GGUFWriter (F32, Q8_0), q/k un-permutation, cache."""

import os

import numpy as np
import pytest

from azr_jax.checkpoints import import_gguf, load_model, params_from_hf_state_dict
from azr_jax.errors import UserError
from azr_jax.models import forward
from azr_jax.tokenizer.tiny import SPECIALS, bytes_to_unicode
from tests.hf_reference import make_reference, state_dict_numpy

GGUF_NAMES = {"input_layernorm.weight": "attn_norm", "self_attn.q_proj.weight": "attn_q",
              "self_attn.k_proj.weight": "attn_k", "self_attn.v_proj.weight": "attn_v",
              "self_attn.o_proj.weight": "attn_output", "post_attention_layernorm.weight": "ffn_norm",
              "mlp.gate_proj.weight": "ffn_gate", "mlp.up_proj.weight": "ffn_up",
              "mlp.down_proj.weight": "ffn_down"}
TOKENS = np.array([[4, 100, 7, 300, 45, 2, 11]], np.int32)


def llama_cpp_permute(w, heads):
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (for interleaved RoPE)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf_name):
    if hf_name.startswith("model.layers."):
        _, _, i, rest = hf_name.split(".", 3)
        return f"blk.{i}.{GGUF_NAMES[rest]}.weight"
    return {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight"}[hf_name]


def write_gguf(path, ref, qtype="F32", arch="llama", override=None):
    """Write ref's weights as llama.cpp would; returns the HF state dict the file represents
    (quantized tensors replaced by their dequantized values)."""
    import gguf
    from gguf import GGMLQuantizationType as Q, quants

    cfg = ref.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.num_layers)
    w.add_context_length(cfg.max_seq_len)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_heads)
    w.add_head_count_kv(cfg.num_kv_heads)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_vocab_size(cfg.vocab_size)
    tokens = list(SPECIALS) + list(bytes_to_unicode().values())
    tokens += [f"<extra_{i}>" for i in range(cfg.vocab_size - len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS)))
    w.add_token_merges([])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{{ 'custom' }}")
    expected = {}
    for name, value in state_dict_numpy(ref.model).items():
        if name == "lm_head.weight" and cfg.tie_embeddings:
            continue
        stored = value
        if name.endswith("q_proj.weight"):
            stored = llama_cpp_permute(value, cfg.num_heads)
        elif name.endswith("k_proj.weight"):
            stored = llama_cpp_permute(value, cfg.num_kv_heads)
        kind = (override or {}).get(gguf_name(name), qtype if value.ndim == 2 else "F32")
        if kind == "F32":
            w.add_tensor(gguf_name(name), stored)
            expected[name] = value
        elif kind == "Q8_1":  # a type gguf cannot dequantize: raw bytes of the right size
            block, size = gguf.GGML_QUANT_SIZES[Q.Q8_1]
            raw = np.zeros((stored.shape[0], stored.shape[1] // block * size), np.uint8)
            w.add_tensor(gguf_name(name), raw, raw_dtype=Q.Q8_1)
        else:
            q = quants.quantize(stored, Q[kind])
            w.add_tensor(gguf_name(name), q, raw_dtype=Q[kind])
            expected[name] = quants.dequantize(quants.quantize(value, Q[kind]), Q[kind])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


@pytest.mark.parametrize("tied", [False, True])
def test_f32_gguf_matches_transformers(tmp_path, tied):
    ref = make_reference("llama", tied=tied, seed=5)
    write_gguf(tmp_path / "m.gguf", ref)
    loaded = import_gguf(str(tmp_path / "m.gguf"), progress=False)
    assert loaded.config == ref.config.replace(max_seq_len=ref.config.max_seq_len)
    ours = np.asarray(forward(loaded.params, loaded.config, TOKENS))
    np.testing.assert_allclose(ours, ref.logits(TOKENS), atol=1e-4, rtol=0)
    tok = loaded.tokenizer
    assert tok.encode("hi<|im_end|>") == [3 + ord("h"), 3 + ord("i"), 2]
    assert tok.chat_template == "{{ 'custom' }}" and tok.eos_ids == (2,)


def test_q8_0_gguf_equals_dequantized_reference(tmp_path):
    ref = make_reference("llama", tied=False, seed=6)
    expected = write_gguf(tmp_path / "q.gguf", ref, qtype="Q8_0")
    loaded = import_gguf(str(tmp_path / "q.gguf"), progress=False)
    want = params_from_hf_state_dict(expected, ref.config)
    import jax

    for (path, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(loaded.params),
                                 jax.tree_util.tree_leaves_with_path(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))
    # quantization really happened, and the model is still close to the f32 one
    assert not np.array_equal(np.asarray(want["lm_head"]), np.asarray(ref.params["lm_head"]))
    ours, theirs = np.asarray(forward(loaded.params, loaded.config, TOKENS)), ref.logits(TOKENS)
    assert 0 < np.abs(ours - theirs).max() < 0.1 * np.abs(theirs).max()


def test_load_model_caches_gguf_by_sha256(tmp_path, monkeypatch):
    from azr_jax.checkpoints.loader import file_sha256

    monkeypatch.setenv("AZR_JAX_CACHE", str(tmp_path / "cache"))
    ref = make_reference("llama", tied=True, seed=7)
    write_gguf(tmp_path / "m.gguf", ref)
    first = load_model(str(tmp_path / "m.gguf"), progress=False)
    entry = tmp_path / "cache" / "gguf" / f"{file_sha256(str(tmp_path / 'm.gguf'))}-v1"
    assert (entry / "config.json").exists() and (entry / "tokenizer.json").exists()
    assert [p for p in os.listdir(entry.parent) if p.startswith(".tmp")] == []
    mtime = os.path.getmtime(entry / "config.json")
    second = load_model(str(tmp_path / "m.gguf"), progress=False)
    assert os.path.getmtime(entry / "config.json") == mtime  # served from the cache
    assert second.config == first.config and second.tokenizer.chat_template == "{{ 'custom' }}"
    np.testing.assert_allclose(np.asarray(forward(second.params, second.config, TOKENS)),
                               ref.logits(TOKENS), atol=1e-4, rtol=0)


def test_gguf_user_errors(tmp_path):
    ref = make_reference("llama", tied=True, seed=8)
    write_gguf(tmp_path / "q81.gguf", ref, override={"blk.0.ffn_up.weight": "Q8_1"})
    with pytest.raises(UserError, match=r"Q8_1.*blk\.0\.ffn_up\.weight|Q8_1.*up_proj"):
        import_gguf(str(tmp_path / "q81.gguf"), progress=False)
    write_gguf(tmp_path / "falcon.gguf", ref, arch="falcon")
    with pytest.raises(UserError, match="'falcon'"):
        load_model(str(tmp_path / "falcon.gguf"))
    with pytest.raises(UserError, match="does not exist|not found"):
        load_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "junk.gguf").write_bytes(b"not gguf at all" * 10)
    with pytest.raises(UserError, match="not a readable GGUF"):
        load_model(str(tmp_path / "junk.gguf"))
