"""azr_jax.sampling"""
