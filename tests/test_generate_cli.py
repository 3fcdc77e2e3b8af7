"""`azr-jax generate` on a tiny exported HF directory, and its one-line user errors."""

import json

import pytest

from azr_jax.cli import main
from tests.hf_reference import make_reference


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from azr_jax.checkpoints import export_hf
    from azr_jax.tokenizer import tiny_tokenizer

    ref = make_reference("llama", tied=False, seed=5, max_position_embeddings=64)
    out = tmp_path_factory.mktemp("tiny_hf")
    export_hf(ref.params, ref.config, tiny_tokenizer(), str(out))
    return ref, out


def run_cli(capsys, *argv):
    rc = main(["generate", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_generate_json_equals_transformers_greedy(tiny_dir, capsys):
    import torch

    from azr_jax.tokenizer import tiny_tokenizer

    ref, path = tiny_dir
    rc, out, _ = run_cli(capsys, "--model", str(path), "--prompt", "def f(x):", "--chat",
                         "--max-new-tokens", "10", "--temperature", "0", "--json")
    assert rc == 0
    result = json.loads(out)
    tok = tiny_tokenizer()
    prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": "def f(x):"}]))
    ids = torch.as_tensor([prompt])
    with torch.no_grad():
        hf = ref.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=10, eos_token_id=2, pad_token_id=0)
    want = hf[0, len(prompt):].tolist()
    if 2 in want:
        want = want[:want.index(2) + 1]
    assert result["tokens"] == want
    assert result["text"] == tok.decode(want, skip_special_tokens=True)
    # plain text output, sampled with a seed: reproducible
    runs = [run_cli(capsys, "--model", str(path), "--prompt", "abc", "--max-new-tokens", "6",
                    "--temperature", "1.0", "--seed", "3", "--json")[1] for _ in range(2)]
    assert runs[0] == runs[1] and len(json.loads(runs[0])["tokens"]) >= 1


def test_generate_user_errors(tiny_dir, tmp_path, capsys):
    _, path = tiny_dir
    common = ["--prompt", "hi", "--max-new-tokens", "4", "--temperature", "0"]

    def error(*argv):
        rc, _, err = run_cli(capsys, *argv)
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        return err

    assert "not found" in error("--model", str(tmp_path / "missing"), *common)
    (tmp_path / "empty").mkdir()
    assert "config.json" in error("--model", str(tmp_path / "empty"), *common)
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert "unsupported model architecture 'gpt2'" in error("--model", str(tmp_path / "gpt2"), *common)
    assert "longer than the model's context (64 tokens)" in error(
        "--model", str(path), "--prompt", "x" * 100, "--max-new-tokens", "4")
    assert "temperature" in error("--model", str(path), "--prompt", "hi", "--temperature", "-1")


def test_generate_rejects_unsupported_gguf_quantization(tmp_path, capsys):
    from tests.test_checkpoints_gguf import write_gguf

    ref = make_reference("llama", tied=True, seed=8)
    write_gguf(tmp_path / "q81.gguf", ref, override={"blk.0.ffn_up.weight": "Q8_1"})
    rc, _, err = run_cli(capsys, "--model", str(tmp_path / "q81.gguf"), "--prompt", "hi")
    assert rc == 2 and err.startswith("error: ") and "Q8_1" in err and err.count("\n") == 1


def test_generate_text_and_the_cli_share_one_default(monkeypatch):
    """Called with no settings, generate_text samples as `azr-jax generate` does: greedy."""
    from azr_jax.checkpoints import load_model
    from azr_jax.cli import build_parser
    from azr_jax.sampling import text

    args = build_parser("generate").parse_args(["generate", "--model", "m", "--prompt", "p"])
    d = text.DEFAULT_SAMPLING
    assert (args.temperature, args.max_new_tokens, args.top_p, args.top_k) == \
        (d.temperature, d.max_new_tokens, d.top_p, d.top_k) == (0.0, 128, 1.0, 0)
    seen = []

    def spy(params, cfg, prompts, seed, sampling, mesh=None):
        seen.append(sampling)
        raise RuntimeError("stop after the config")

    monkeypatch.setattr(text, "sample", spy)
    with pytest.raises(RuntimeError, match="stop after"):
        text.generate_text(load_model("tiny"), ["Hi"])
    assert seen[0].greedy and seen[0].max_new_tokens == 128
