"""azr_jax.selfplay"""
