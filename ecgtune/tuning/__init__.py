"""Tuner assembly, MLflow tracking and champion promotion."""
