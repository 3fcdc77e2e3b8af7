"""`azr-jax export-hf`: a tiny training run's checkpoint -> HF directory -> transformers,
with logits equal to our model on the trained parameters."""

import json
import os

import jax
import numpy as np
import pytest

from azr_jax.cli import main as cli_main


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.trainer import train

    workdir = str(tmp_path_factory.mktemp("run"))
    # The random tiny model writes only format errors, so every advantage is 0 and the policy
    # gradient vanishes; AdamW's decoupled weight decay still moves every weight, which is
    # what tells the trained weights from the initial ones below.
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "optim.weight_decay=0.1"])
    train(cfg, workdir)  # trained on a (2, 2, 2) mesh of 8 fake devices
    return workdir


def test_export_hf_round_trips_into_transformers(trained_workdir, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from azr_jax.checkpoints import load_model
    from azr_jax.models import forward

    out = str(tmp_path / "hf")
    assert cli_main(["export-hf", "--workdir", trained_workdir, "--output", out]) == 0
    assert "exported step 1" in capsys.readouterr().out
    assert json.load(open(os.path.join(out, "config.json")))["architectures"]
    assert any(f.endswith(".safetensors") for f in os.listdir(out))

    ours = load_model(out, progress=False)
    base = load_model("tiny", progress=False)  # the weights training started from
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                         ours.params, base.params)
    assert max(jax.tree.leaves(moved)) > 0, "exported weights are the untrained ones"

    model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokens = np.array([[1, 17, 42, 99, 3, 250, 7, 511]], np.int32)
    with torch.no_grad():
        ref = model(torch.tensor(tokens, dtype=torch.long)).logits.numpy()
    got = np.asarray(forward(ours.params, ours.config, tokens))
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert hf_tok.encode("def f(x): return x", add_special_tokens=False) == \
        ours.tokenizer.encode("def f(x): return x")


def test_export_hf_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["export-hf", "--workdir", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "not a training workdir" in capsys.readouterr().err
