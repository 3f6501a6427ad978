"""What every dataset class provides: the contract between a dataset module and the rest of ecgtune.

A dataset registers its class with ``@register_dataset(name)`` (`ecgtune.data._registry`); a search builds
it with ``get_dataset(name, root=..., **space's dataset keys)`` and then, with the space's ``preprocessing``
as keyword arguments, asks it for ``prepare`` (the examples), ``prepared_key`` (their identity: the cache
key, the data key on every run and registered version) and ``preparation`` (how a raw recording becomes
those inputs: what a champion carries to predict). ``protocols`` says which split protocols fit before
anything is prepared. tests/data/test_dataset_contract.py checks every registered class against this.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from ecgtune.data.examples import Examples


@runtime_checkable
class Dataset(Protocol):
    """A registered dataset.

    Class attributes:
        name: The registered name (what ``dataset.name`` in a space says).
        space_keys: What a space's ``dataset`` section may say beside name, split and preprocessing; each is
            passed to the constructor (the ``wfdb`` dataset's ``path``). Empty for most.

    The constructor takes ``root`` (the folder holding the dataset's folder; None: ``paths.data_root()``)
    and the ``space_keys`` as keyword arguments. ``prepare``, ``prepared_key`` and ``preparation`` take the
    same parameters: a space's ``preprocessing`` is passed to each of them as it is.
    """

    name: ClassVar[str]
    space_keys: ClassVar[tuple[str, ...]]

    @staticmethod
    def protocols(preprocessing: dict) -> dict[str, dict]:
        """The split protocols that fit this preprocessing, each with its default options."""
        ...

    def download(self) -> None:
        """Fetch the raw files that are missing (nothing when they are there), verified; or say what to do."""
        ...

    def prepare(self, **preprocessing: Any) -> Examples:
        """The examples, built once per key and read from the cache after (idempotent)."""
        ...

    def prepared_key(self, **preprocessing: Any) -> str:
        """The identity of what ``prepare`` returns for these parameters and raw files."""
        ...

    def preparation(self, **preprocessing: Any) -> dict:
        """How a raw recording becomes these examples' inputs (`ecgtune.data.recordings`)."""
        ...

    def load(self, split: str, **kwargs: Any) -> Examples:
        """The examples of one part (train / val / test) under a protocol, with its default options."""
        ...


@runtime_checkable
class RawRecordings(Protocol):
    """A dataset whose examples come from recordings it can give back whole: what scoring a champion on it
    through the champion's own preparation needs (``ecgtune apply --dataset``). Beat tables (Kaggle's CSV)
    have none."""

    def recording(self, record: str) -> Any:
        """The raw recording ``record`` (every lead, physical units, its rate, lead names): a
        `ecgtune.data.recordings.Recording`."""
        ...
