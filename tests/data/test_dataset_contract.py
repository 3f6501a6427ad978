"""The Dataset protocol (ecgtune.data.protocol), checked for every registered dataset: a new one gets this
the day it is registered, before a search finds out what it lacks."""

import inspect

import pytest

from ecgtune.data import Dataset, RawRecordings, dataset_class, get_dataset, list_datasets, list_splits

# The keyword arguments a search hands prepare, prepared_key and preparation: a space's preprocessing.
KEYED_METHODS = ("prepare", "prepared_key", "preparation")


def built(name: str, tmp_path):
    """The dataset as a search builds it: a root, and each of its space keys (a folder, for wfdb's path)."""
    cls = dataset_class(name)
    return get_dataset(name, root=tmp_path, **{key: str(tmp_path) for key in cls.space_keys})


@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_dataset_keeps_the_dataset_protocol(name, tmp_path):
    dataset = built(name, tmp_path)
    assert isinstance(dataset, Dataset), f"{name}: see ecgtune.data.protocol.Dataset for what it lacks"
    cls = type(dataset)
    assert cls.name == name  # the name it registered under is the one its cache keys and messages use
    assert isinstance(cls.space_keys, tuple)
    assert "root" in inspect.signature(cls.__init__).parameters
    # A space's preprocessing reaches all three as keyword arguments: each takes what the others take.
    signatures = {m: [(p.name, p.kind) for p in inspect.signature(getattr(cls, m)).parameters.values()]
                  for m in KEYED_METHODS}
    assert signatures["prepare"] == signatures["prepared_key"] == signatures["preparation"], signatures
    # ... and takes parameters it does not name, to refuse them itself with the key (not a TypeError).
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(cls.prepare).parameters.values())
    # Split protocols it declares are known ones, each with its options, asked of the class before anything
    # is built (spaces.py checks a space's split with it).
    fitting = cls.protocols({})
    assert fitting and set(fitting) <= set(list_splits()) and all(isinstance(o, dict) for o in fitting.values())
    # Every download takes no argument (a search or the CLI may call it bare).
    assert all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
               for p in list(inspect.signature(cls.download).parameters.values())[1:])


def test_the_protocol_names_what_a_class_lacks():
    class Half:
        name, space_keys = "half", ()

        @staticmethod
        def protocols(preprocessing):
            return {}

        def prepare(self, **preprocessing):
            return None

    assert not isinstance(Half(), Dataset)


def test_datasets_of_whole_recordings_give_them_back_and_beat_tables_do_not(tmp_path):
    recordings = {name for name in list_datasets() if isinstance(built(name, tmp_path), RawRecordings)}
    assert recordings == set(list_datasets()) - {"kaggle_heartbeat"}
