"""The model registry: a dict, a decorator that refuses duplicates, and a builder that fails loudly.

Every builder (a function or the model class itself) has the same keyword-only contract:
``builder(*, inputs, num_outputs, **hparams) -> nn.Module``, where ``inputs`` gives the shape of one
example of each named input it takes (``{"signal": (leads, samples)}`` for a signal model) and
``num_outputs`` the logits its head makes (`outputs_for`); its ``forward`` takes those inputs
positionally, in that order. Its defaults document the published settings and give each hyperparameter
its type.
"""

from __future__ import annotations

import fnmatch
import inspect
from typing import Callable

from ecgtune.errors import EcgtuneError

_MODELS: dict[str, Callable] = {}
_TAKES: dict[str, tuple[str, ...]] = {}


def register_model(name: str, *, takes: tuple[str, ...] = ("signal",)) -> Callable[[Callable], Callable]:
    """Register ``builder`` under ``name``; ``takes`` names its inputs in ``forward``'s order. A second
    registration of the same name is a bug."""

    def decorator(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered by {_MODELS[name].__module__}")
        _MODELS[name] = builder
        _TAKES[name] = tuple(takes)
        return builder

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_inputs(name: str) -> tuple[str, ...]:
    """The inputs model ``name`` takes, in order."""
    _known(name)
    return _TAKES[name]


def _known(name: str) -> None:
    if name not in _MODELS:
        raise EcgtuneError(f"unknown model {name!r}; known models: {', '.join(list_models())}")


def create_model(name: str, *, inputs: dict[str, tuple[int, ...]], num_outputs: int, **hparams):
    """Build the registered model ``name`` for examples whose inputs have these shapes; unknown names, and
    inputs the model does not take, raise naming what is expected."""
    _known(name)
    if tuple(inputs) != _TAKES[name]:
        raise EcgtuneError(
            f"model {name!r} takes the inputs {list(_TAKES[name])} (in that order); these examples have {list(inputs)}"
        )
    builder = _MODELS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p not in ("self", "inputs", "num_outputs")]
    unknown = sorted(set(hparams) - set(accepted))
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(builder).parameters.values()):
        raise EcgtuneError(f"model {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; it takes "
                           f"{', '.join(accepted) or 'none'}")
    return builder(inputs={k: tuple(v) for k, v in inputs.items()}, num_outputs=num_outputs,
                   **typed_like_defaults(builder, hparams, name))


def signal_shape(inputs: dict[str, tuple[int, ...]]) -> tuple[int, int]:
    """(leads, samples) of a signal model's one input."""
    leads, samples = inputs["signal"]
    return leads, samples


def typed_like_defaults(builder: Callable, hparams: dict, model: str = "") -> dict:
    """Each hyperparameter cast to the type of the builder's default for it: Tune's quantised domains
    and YAML hand integers over as floats (32.0 channels), and a layer size must be an int."""
    defaults = {
        name: param.default for name, param in inspect.signature(builder).parameters.items()
        if param.default is not inspect.Parameter.empty
    }
    out = {}
    for key, value in hparams.items():
        default = defaults.get(key)
        if isinstance(default, bool) or default is None or isinstance(value, bool):
            out[key] = value  # bool("false") is True: flags are passed through as they are
        elif isinstance(default, (int, float)):
            try:
                out[key] = type(default)(value)
            except (TypeError, ValueError):
                kind = "a whole number" if isinstance(default, int) else "a number"
                raise EcgtuneError(f"model {model!r} hyperparameter {key!r}: expected {kind} (its default is "
                                   f"{default!r}), got {value!r}") from None
        else:
            out[key] = value
    return out


def outputs_for(num_labels: int, multi_label: bool) -> int:
    """The logits of a model's head: one per label of a multi-label task (sigmoid each), one for two
    classes (sigmoid / BCE), one per class otherwise (softmax)."""
    if multi_label:
        return num_labels
    return 1 if num_labels == 2 else num_labels
