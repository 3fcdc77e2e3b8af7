"""pipeline.setup builds the library dataclasses from config sections by field name
(`from_section`): every section value must arrive, derived values must win."""

from __future__ import annotations

import dataclasses

from azr_jax.pipeline import setup
from azr_jax.pipeline.config import load_config
from azr_jax.tokenizer import tiny_tokenizer

OVERRIDES = ["optim.lr=3e-5", "optim.b2=0.95", "optim.mini_batch_size=4", "trainer.steps=7",
             "rl.loss=ppo_clip", "rl.dual_clip=3.0", "rl.clip_eps_high=0.28",
             "rl.aggregation=seq_mean", "sampling.top_k=5", "sampling.prompt_bucket=exact",
             "sampling.max_new_tokens=33"]


def _shared(obj, section, skip=()):
    names = {f.name for f in dataclasses.fields(obj)} & set(section.keys())
    assert names, "no shared field names: the test checks nothing"
    return {n: (getattr(obj, n), section[n]) for n in names - set(skip)}


def test_sections_become_dataclasses_field_by_field():
    cfg = load_config("tiny_cpu", OVERRIDES)
    optim = setup.optim_config(cfg)
    for name, (got, want) in _shared(optim, cfg.optim).items():
        assert got == want, name
    assert optim.total_steps == 7 and optim.lr == 3e-5 and optim.mini_batch_size == 4

    loss = setup.loss_config(cfg)
    for name, (got, want) in _shared(loss, cfg.rl).items():
        assert got == want, name
    assert loss.name == "ppo_clip" and loss.dual_clip == 3.0 and loss.aggregation == "seq_mean"
    cfg_off = load_config("tiny_cpu", ["rl.dual_clip=0"])
    assert setup.loss_config(cfg_off).dual_clip is None  # 0 in the config = off

    tok = tiny_tokenizer()
    sampling = setup.sampling_config(cfg, tok, None)
    for name, (got, want) in _shared(sampling, cfg.sampling).items():
        assert got == want, name
    assert sampling.stop_token_ids == tuple(tok.eos_ids) and sampling.top_k == 5
