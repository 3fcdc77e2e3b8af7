"""Training recipes: each module has `get_config()` returning an ml_collections ConfigDict.

Recipes start from `configs.base.get_config()` (the paper's defaults) and override fields.
"""
