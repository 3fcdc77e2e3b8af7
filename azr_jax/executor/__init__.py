"""azr_jax.executor"""
