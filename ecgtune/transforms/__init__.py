"""Transforms of prepared examples: resampling of the training split (SMOTE)."""
