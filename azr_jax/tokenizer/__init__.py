"""azr_jax.tokenizer"""
