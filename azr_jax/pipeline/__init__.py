"""azr_jax.pipeline"""
