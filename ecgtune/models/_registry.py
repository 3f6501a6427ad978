"""The model registry: a dict, a decorator that refuses duplicates, and a builder that fails loudly.

Every builder has the same keyword-only contract:
``builder(*, in_channels, num_classes, input_length, **hparams) -> nn.Module``.
A model with ``num_classes == 2`` has a single logit (sigmoid / BCE); otherwise one logit per class.
"""

from __future__ import annotations

import fnmatch
from typing import Callable

from ecgtune.errors import EcgtuneError

_MODELS: dict[str, Callable] = {}


def register_model(name: str) -> Callable[[Callable], Callable]:
    """Register ``builder`` under ``name``; a second registration of the same name is a bug."""

    def decorator(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered by {_MODELS[name].__module__}")
        _MODELS[name] = builder
        return builder

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, *, in_channels: int, num_classes: int, input_length: int, **hparams):
    """Build the registered model ``name``; unknown names raise with the list of known ones."""
    if name not in _MODELS:
        raise EcgtuneError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    try:
        return _MODELS[name](
            in_channels=in_channels, num_classes=num_classes, input_length=input_length, **hparams
        )
    except TypeError as exc:  # an unknown hyperparameter name: say which model refused it
        raise EcgtuneError(f"model {name!r} does not accept these hyperparameters {sorted(hparams)}: {exc}") from exc


def output_units(num_classes: int) -> int:
    """Binary tasks get one logit, N-class tasks one per class."""
    return 1 if num_classes == 2 else num_classes
