"""The one trainable, its epoch loop and metrics. Nothing here knows a particular model."""
