"""azr_jax.evals"""
