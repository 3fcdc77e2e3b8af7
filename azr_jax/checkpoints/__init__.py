"""azr_jax.checkpoints"""
