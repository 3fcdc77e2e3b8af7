from setuptools import find_packages, setup

setup(
    name="azr_jax",
    version="0.1.0",
    description="Absolute Zero Reasoner (self-play RL for code reasoning) in JAX/Flax",
    packages=find_packages(include=["azr_jax", "azr_jax.*"]),
    python_requires=">=3.11",
    entry_points={"console_scripts": ["azr-jax=azr_jax.cli:main"]},
)
