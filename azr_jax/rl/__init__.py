"""azr_jax.rl"""
