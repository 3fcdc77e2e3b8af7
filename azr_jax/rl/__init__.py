"""azr_jax.rl: advantage estimators, policy losses, the sharded update step.

Import submodules directly (`from azr_jax.rl import losses, update`); this module only
re-exports names and stays import-light.
"""
