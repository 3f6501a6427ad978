"""Model families. Importing this package registers every family (it imports torch)."""

from ecgtune.models import cnn1d  # noqa: F401  (registers its builders)
from ecgtune.models import dualnet  # noqa: F401  (registers its builders)
from ecgtune.models import fusion  # noqa: F401  (registers its builders)
from ecgtune.models import heartbeat  # noqa: F401  (registers its builders)
from ecgtune.models import image2d  # noqa: F401  (registers its builders)
from ecgtune.models import recurrent1d  # noqa: F401  (registers its builders)
from ecgtune.models import resnet12  # noqa: F401  (registers its builders)
from ecgtune.models import rhythm_joined  # noqa: F401  (registers its builders)
from ecgtune.models._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
