"""azr-jax: the Absolute Zero Reasoner (self-play RL for code reasoning) in JAX/Flax."""

__version__ = "0.1.0"
