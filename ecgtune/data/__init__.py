"""Datasets: a registry of dataset classes, the `Examples` they produce, and split protocols.

Importing this package registers every dataset module below; wfdb and scipy are imported
only when a dataset actually reads or filters records.
"""

from ecgtune.data import cinc2017 as _cinc2017  # noqa: F401  (registers "cinc2017")
from ecgtune.data import kaggle_csv as _kaggle_csv  # noqa: F401  (registers "kaggle_heartbeat")
from ecgtune.data import mitdb as _mitdb  # noqa: F401  (registers "mitdb")
from ecgtune.data import ptbxl as _ptbxl  # noqa: F401  (registers "ptbxl")
from ecgtune.data._registry import get_dataset, list_datasets, register_dataset
from ecgtune.data.examples import Examples
from ecgtune.data.splits import assign_split, list_splits, split_by_record, split_has_test

__all__ = ["Examples", "assign_split", "get_dataset", "list_datasets", "list_splits", "register_dataset",
           "split_by_record", "split_has_test"]
