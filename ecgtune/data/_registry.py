"""The dataset registry: a name -> class dict that fails loudly on duplicates and unknown names."""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

from ecgtune.errors import EcgtuneError

T = TypeVar("T", bound=type)

_DATASETS: dict[str, type] = {}


def register_dataset(name: str) -> Callable[[T], T]:
    """Class decorator that registers a dataset class under `name`.

    Args:
        name: The name users pass to `get_dataset` and search-space files use.

    Raises:
        ValueError: If another class already holds the name (two modules claiming one
            name is a programming error, not a user input).
    """

    def decorator(cls: T) -> T:
        if name in _DATASETS:
            raise ValueError(
                f"dataset name {name!r} is already registered by {_DATASETS[name].__qualname__}; "
                f"cannot register {cls.__qualname__} under it"
            )
        _DATASETS[name] = cls
        return cls

    return decorator


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_DATASETS)


def get_dataset(name: str, *, root: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """Build the dataset registered as `name`.

    Args:
        name: A registered dataset name, e.g. "mitdb".
        root: Folder that contains the dataset's folder (e.g. the folder holding `mitdb/`);
            None means `paths.data_root()` (ECGTUNE_DATA_DIR, else <ECGTUNE_HOME>/data).
        **kwargs: Passed to the dataset's constructor (e.g. `base_url` in tests).

    Raises:
        EcgtuneError: If no dataset is registered under `name`.
    """
    try:
        cls = _DATASETS[name]
    except KeyError:
        known = ", ".join(list_datasets()) or "(none)"
        raise EcgtuneError(f"unknown dataset {name!r}; known datasets: {known}") from None
    return cls(root=root, **kwargs)


def dataset_class(name: str) -> type:
    """The class registered as ``name``.

    Raises:
        EcgtuneError: If no dataset is registered under `name`.
    """
    if name not in _DATASETS:
        known = ", ".join(list_datasets()) or "(none)"
        raise EcgtuneError(f"unknown dataset {name!r}; known datasets: {known}")
    return _DATASETS[name]


def protocol_options(name: str, preprocessing: dict, protocol: str, given: dict | None = None,
                     where: str = "dataset.split") -> dict:
    """The options a split protocol runs with on this dataset: the dataset's defaults for it, then ``given``.

    Each dataset declares the protocols that fit it (``protocols(preprocessing)``: protocol -> default options);
    one that does not fit (PTB-XL's folds on MIT-BIH, a per-record protocol on one example per record) is
    refused here, before anything is prepared.

    Raises:
        EcgtuneError: naming ``where``, the protocol and the ones that fit.
    """
    from ecgtune.data.splits import check_options, list_splits

    if protocol not in list_splits():
        raise EcgtuneError(f"{where}: unknown split protocol {protocol!r}; known protocols: {', '.join(list_splits())}")
    fitting = dataset_class(name).protocols(preprocessing)
    if protocol not in fitting:
        raise EcgtuneError(f"{where}: split {protocol!r} does not fit dataset {name!r} with this preprocessing; "
                           f"it supports {', '.join(sorted(fitting))}")
    return {**fitting[protocol], **check_options(protocol, dict(given or {}), where)}
